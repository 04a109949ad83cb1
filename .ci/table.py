"""Print backend x contract test -> passed / failed / unsupported from a junit xml file.

A contract test's backend is read from the runner module that imported the suite
(tests/contracts/test_memory.py -> memory, tests/adapters/test_messaging_redis_contract.py
-> redis); "unsupported" is the outcome the suite records as a junit property when it
asserted UnsupportedFeature for a feature the backend does not claim.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict

_RUNNER = re.compile(
    r"tests[./](?:contracts[./]test_(\w+)|adapters[./]test_messaging_(\w+)_contract)"
)


def outcome(case: ET.Element) -> str:
    if case.find("failure") is not None or case.find("error") is not None:
        return "FAILED"
    if case.find("skipped") is not None:
        return "skipped"
    for prop in case.iter("property"):
        if prop.get("name") == "contract_outcome":
            return str(prop.get("value"))
    return "passed"


def main(path: str) -> int:
    table: dict[str, dict[str, str]] = defaultdict(dict)
    for case in ET.parse(path).getroot().iter("testcase"):
        match = _RUNNER.search(case.get("classname", ""))
        if not match:
            continue
        backend = match.group(1) or match.group(2)
        test = re.sub(r"\[.*", "", case.get("name", ""))
        previous = table[test].get(backend)
        current = outcome(case)
        # Parametrised variants fold into one cell: any failure wins, then passed.
        if previous is None or current == "FAILED" or previous == "skipped":
            table[test][backend] = current
    backends = sorted({b for row in table.values() for b in row})
    if not backends:
        print("no contract tests found in", path)
        return 1
    width = max(len(t) for t in table) + 2
    print("contract test".ljust(width) + "".join(b.ljust(13) for b in backends))
    for test in sorted(table):
        print(test.ljust(width) + "".join(table[test].get(b, "-").ljust(13) for b in backends))
    failed = sum(v == "FAILED" for row in table.values() for v in row.values())
    print(f"\n{len(table)} contract tests x {len(backends)} backends; {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
