"""A bounded load test: 50 infer requests from 4 concurrent clients, every answer checked.

The p50/p95 latencies are printed (``pytest -s``) and, with ``MONAILABEL_LOAD_REPORT=FILE``, written
to FILE as JSON; docs/monailabel.md records a run."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from monailabel_client import infer, reference

pytestmark = pytest.mark.slow

REQUESTS, CLIENTS = 50, 4
STUDIES = ("P60_L_DM_MLO", "P72_R_DM_CC", "P304_R_DM_MLO", "P264_L_DM_CC")  # 3 JPEGs and a DICOM, 1 or 2 ROIs each


def test_50_requests_from_4_concurrent_clients_are_all_answered_correctly(folder_server, folder_cases, segmenter):
    cases = [folder_cases[name] for name in STUDIES]
    expected = {case.image_id: reference(case, segmenter)["union"] for case in cases}
    serial = []  # one client alone first (also warms the server: first-call costs are not load)
    for case in cases * 2:
        start = time.perf_counter()
        answer = infer(folder_server, case.image_id, {"boxes": case.boxes})
        serial.append(time.perf_counter() - start)
        assert answer.status == 200 and np.array_equal(answer.label, expected[case.image_id])

    def one(index: int) -> tuple[str, bool, float, float, str]:
        case = cases[index % len(cases)]
        start = time.perf_counter()
        answer = infer(folder_server, case.image_id, {"boxes": case.boxes})
        seconds = time.perf_counter() - start
        good = answer.status == 200 and answer.label is not None and np.array_equal(answer.label, expected[case.image_id])
        server_seconds = float(answer.json["latencies"]["total"]) if good else float("nan")
        return case.image_id, good, seconds, server_seconds, "" if good else f"{answer.status} {answer.body[:200]!r}"

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        results = list(pool.map(one, range(REQUESTS)))
    wall = time.perf_counter() - start
    failures = [(image, why) for image, good, _, _, why in results if not good]
    latency = np.array([r[2] for r in results])
    work = np.array([r[3] for r in results if r[1]])
    report = {
        "requests": REQUESTS, "clients": CLIENTS, "correct": REQUESTS - len(failures), "wall_s": round(wall, 2),
        "throughput_per_s": round(REQUESTS / wall, 3),
        "latency_p50_s": round(float(np.percentile(latency, 50)), 3), "latency_p95_s": round(float(np.percentile(latency, 95)), 3),
        "latency_max_s": round(float(latency.max()), 3),
        "one_client_p50_s": round(float(np.percentile(serial[len(cases):], 50)), 3),
        "server_work_p50_s": round(float(np.percentile(work, 50)), 3) if work.size else None,
        "studies": list(STUDIES),
    }  # fmt: skip
    try:
        from connected_unets.precision import cpu_model

        report["cpu"] = cpu_model()
    except ImportError:
        pass
    report["cpus"] = os.cpu_count()
    print(json.dumps(report, indent=1))
    if os.environ.get("MONAILABEL_LOAD_REPORT"):
        with open(os.environ["MONAILABEL_LOAD_REPORT"], "w") as handle:
            json.dump(report, handle, indent=1)
    assert not failures, failures[:5]
    assert folder_server.alive()
