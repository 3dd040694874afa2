#!/bin/bash
# equivalence.sh - malfam score, malfamd classify and classify_stream give one answer per
# report (tests/integration/equivalence.py says how).
exec "${PYTHON:-/usr/bin/python3}" "$(dirname "$0")/equivalence.py"
