"""d2ljax.published: the paper's numbers (checked against ../shared/spec/protocol.md's
tables) and the merged Markdown table of several evaluate.py reports."""
import json
import re

from conftest import SHARED, require

from d2ljax import published
from d2ljax.__main__ import main


def protocol_tables() -> dict:
    """(mode, set, QF) -> {method: (PSNR, SSIM, PSNR-B)}, parsed from protocol.md's tables."""
    text = require(SHARED / "spec" / "protocol.md").read_text()
    tables, mode, methods = {}, None, []
    for line in text.splitlines():
        if line.startswith("Grayscale (Y channel):") or line.startswith("Colour (RGB):"):
            mode = "gray" if line.startswith("Gray") else "color"
        elif mode and line.startswith("| set | QF |"):
            methods = [c.strip() for c in line.strip("|").split("|")[2:]]
        elif mode and methods and (m := re.match(r"\| (\w+) \| (\d+) \|(.*)\|$", line)):
            cells = [tuple(float(v) for v in c.split("/")) for c in m.group(3).split("|")]
            tables[(mode, m.group(1), int(m.group(2)))] = dict(zip(methods, cells))
    return tables


def test_published_numbers_are_the_protocols():
    assert published.TABLES == protocol_tables()


def test_merged_table_adds_the_published_columns(tmp_path, capsys):
    def report(method, rows):
        return {"results": [{"dataset": d, "mode": "gray", "qf": q, "method": method,
                             "psnr": p, "ssim": 0.8, "psnrb": p - 1, "n_images": 29} for d, q, p in rows]}
    paths = []
    for name, rows in (("a", [("LIVE1_gray", 10, 28.5)]), ("b", [("LIVE1_gray", 20, 31.0), ("LIVE1_gray", 10, 28.4)])):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(report(name, rows)))
    assert main(["tables", *map(str, paths)]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("| LIVE1_gray")]
    assert lines == [
        "| LIVE1_gray | 10 | 28.500 / 0.8000 / 27.500 | 28.400 / 0.8000 / 27.400 | 28.96 / 0.808 / 28.68 | "
        "29.75 / 0.827 / 29.40 | 30.08 / 0.840 / 30.06 |",
        "| LIVE1_gray | 20 | - | 31.000 / 0.8000 / 30.000 | 31.29 / 0.873 / 30.76 | 32.13 / 0.889 / 31.57 | "
        "32.47 / 0.898 / 32.42 |"]
