"""Runs benchmarks/speed.py with a tiny Swin registered in timm (for the smoke test)."""
import runpy
import sys
from pathlib import Path

from timm.models import register_model
from timm.models.swin_transformer import _create_swin_transformer


@register_model
def xaiseg_speed_test_swin(pretrained: bool = False, **kwargs):
    args = dict(img_size=32, patch_size=4, window_size=4, embed_dim=8, depths=(2, 2, 2), num_heads=(1, 1, 2))
    return _create_swin_transformer("swin_tiny_patch4_window7_224", pretrained=pretrained, **dict(args, **kwargs))


sys.argv = [sys.argv[0], "--model", "xaiseg_speed_test_swin", *sys.argv[1:]]
runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"), run_name="__main__")
