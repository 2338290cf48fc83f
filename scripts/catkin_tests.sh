#!/usr/bin/env bash
# The catkin tests of CMakeLists.txt (rostest hztest on anonymized/image, roslaunch checks of launch/)
# in this checkout's workspace: `catkin_make run_tests`, then `catkin_test_results`, which (unlike
# run_tests) fails when a test failed. Run by `make test` after pytest; needs `make setup` first.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
ws="$(sed -n 's|^source "\(.*\)/devel/setup.bash"|\1|p' "$repo/build/setup.bash")"
[ -d "$ws" ] || { echo "[catkin tests] error: no workspace; run make setup" >&2; exit 1; }
set +u; source "$ws/devel/setup.bash"; set -u  # ROS setup scripts read unset variables
export PATH="$repo/.venv/bin:$PATH"  # roslaunch-check and the nodes need the venv's python (rospkg, torch)
rm -rf "$ws/build/test_results/emoji_privacy"
echo "[catkin tests] catkin_make run_tests in $ws (log: $ws/run_tests.log)"
(cd "$ws" && catkin_make run_tests -DPYTHON_EXECUTABLE="$repo/.venv/bin/python3" >"$ws/run_tests.log" 2>&1) \
  || { tail -30 "$ws/run_tests.log" >&2; echo "[catkin tests] error: catkin_make run_tests failed" >&2; exit 1; }
catkin_test_results "$ws/build/test_results" | sed 's/^/[catkin tests] /'
exit "${PIPESTATUS[0]}"
