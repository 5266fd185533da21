"""Label names and CT windows shared by the loaders, the phantom and the models."""
from __future__ import annotations

# RSNA 2019 order (the order of the subtype rows in ``stage_2_train.csv``); every label vector in
# xaiseg uses it, with "any" last.
SUBTYPES: tuple[str, ...] = ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural")
LABELS: tuple[str, ...] = SUBTYPES + ("any",)

# (centre, width) in HU: brain, subdural, bone (docs/design.md §1, as in HGI-SAM).
DEFAULT_WINDOWS: tuple[tuple[float, float], ...] = ((40.0, 120.0), (80.0, 200.0), (600.0, 2800.0))

# PhysioNet CT-ICH column of each subtype in ``hemorrhage_diagnosis_raw_ct.csv``.
PHYSIONET_COLUMNS: dict[str, str] = {
    "epidural": "Epidural",
    "intraparenchymal": "Intraparenchymal",
    "intraventricular": "Intraventricular",
    "subarachnoid": "Subarachnoid",
    "subdural": "Subdural",
}
PHYSIONET_CSV = "hemorrhage_diagnosis_raw_ct.csv"
PHYSIONET_CSV_COLUMNS: tuple[str, ...] = (
    "PatientNumber",
    "SliceNumber",
    "Intraventricular",
    "Intraparenchymal",
    "Subarachnoid",
    "Epidural",
    "Subdural",
    "No_Hemorrhage",
    "Fracture_Yes_No",
)
