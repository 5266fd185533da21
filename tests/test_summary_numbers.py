"""summary_numbers: two summary.csv texts that differ only in timing compare equal; any other
cell still counts (what benchmarks/speed.py and torchrun_speed.py report as "identical")."""
import csv
import io

from xaiseg.benchmark.report import TIMING_COLUMNS, summary_numbers


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


ROWS = [{"rank": "1", "method": "hgi-sam", "dice_mean": "0.25", "wall_time_s": "3.5", "detection_auc": "0.9"},
        {"rank": "2", "method": "rollout", "dice_mean": "0.125", "wall_time_s": "1.0", "detection_auc": "0.9"}]


def test_timing_alone_does_not_count_and_every_other_cell_does():
    assert TIMING_COLUMNS == ("wall_time_s",)
    slower = [dict(r, wall_time_s=str(float(r["wall_time_s"]) * 7)) for r in ROWS]
    assert summary_numbers(_csv(ROWS)) == summary_numbers(_csv(slower))
    for key in ("rank", "method", "dice_mean", "detection_auc"):
        changed = [dict(ROWS[0], **{key: ROWS[0][key] + "1"}), ROWS[1]]
        assert summary_numbers(_csv(ROWS)) != summary_numbers(_csv(changed)), key
    kept = summary_numbers(_csv(ROWS))
    assert kept == [{k: v for k, v in r.items() if k != "wall_time_s"} for r in ROWS]
