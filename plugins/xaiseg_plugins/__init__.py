"""xaiseg's built-in attribution methods.

Each module here is an ordinary plugin: it uses only xaiseg's public API and is registered
through the ``xaiseg.methods`` entry-point group in pyproject.toml, exactly as a third-party
package would be. The framework never imports this package by name.
"""
