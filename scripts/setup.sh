#!/usr/bin/env bash
# Idempotent set-up of gr-semcom on Debian 12 / Ubuntu 22.04+:
#   1. Debian packages (GNU Radio 3.10 and its dev files, compilers, scipy/matplotlib)
#   2. .venv from Debian's /usr/bin/python3 --system-site-packages (sees GNU Radio)
#   3. pinned pip requirements (numpy held at Debian's version: GR's bindings need numpy 1)
#   4. CMake configure/build/install of the module into .venv
# Each step is skipped when already done; a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv="$root/.venv"
say() { printf '[setup] %s\n' "$*" >&2; }

# --- 1. Debian packages -----------------------------------------------------
apt_packages=(gnuradio gnuradio-dev python3-zmq python3-scipy python3-matplotlib python3-pil
              cmake g++ make python3-venv)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    say "installing Debian packages: ${missing[*]} (~370 MB, ~90 s)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. venv ----------------------------------------------------------------
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "from gnuradio import gr" 2>/dev/null; then
    say "creating $venv from /usr/bin/python3 (system site packages)"
    rm -rf "$venv"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
fi

# --- 3. pip requirements ----------------------------------------------------
sys_numpy=$(/usr/bin/python3 -c "import numpy; print(numpy.__version__)")
stamp="$venv/.requirements.stamp"
want="$(sha256sum requirements.txt | cut -d' ' -f1) numpy==$sys_numpy"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing pip requirements (torch is a ~5 GB CUDA build; ~60 s from local wheels)"
    echo "numpy==$sys_numpy" > "$venv/constraints.txt"
    "$venv/bin/pip" install -q --disable-pip-version-check -r requirements.txt \
        -c "$venv/constraints.txt" 2>&1 | grep -v "^WARNING: Location" >&2 || true
    "$venv/bin/python" -c "import numpy, torch; assert numpy.__version__ == '$sys_numpy', numpy.__version__"
    echo "$want" > "$stamp"
fi

# --- 4. build and install the module ----------------------------------------
arch_lib="lib/$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_config_var("MULTIARCH") or "")')"
[ "$arch_lib" != "lib/" ] || arch_lib=lib
pyver=$(/usr/bin/python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [ ! -f build/CMakeCache.txt ]; then
    say "configuring the CMake build"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_INSTALL_PREFIX="$venv" \
        -DCMAKE_INSTALL_RPATH="$venv/$arch_lib" \
        -DGR_PYTHON_DIR="lib/python$pyver/site-packages" \
        -DPYTHON_EXECUTABLE="$venv/bin/python" -DENABLE_DOXYGEN=OFF >/dev/null
fi
# GrPybind copies the docstring templates once (its stamp does not depend on them): a block
# added since then fails with "<block>_pydoc.h: No such file" unless the stamp goes.
stamp_docs=build/python/semcom/bindings/docstring_status
if [ -f "$stamp_docs" ] && [ -n "$(find python/semcom/bindings/docstrings -name '*_pydoc_template.h' -newer "$stamp_docs")" ]; then
    rm -f "$stamp_docs"
fi
cmake --build build -j"$(nproc)" 2>&1 | grep -E "error|warning: |Error" >&2 || true
cmake --build build -j"$(nproc)" >/dev/null   # fails loudly if the first pass failed
# A file removed from the source must not linger in the installed package (cmake --install
# never deletes): the installed tree is rewritten whole.
rm -rf "$venv/lib/python$pyver/site-packages/gnuradio/semcom"
rm -f "$venv/share/gnuradio/grc/blocks/semcom_"*.block.yml
cmake --install build >/dev/null
"$venv/bin/python" -c "from gnuradio import semcom" || { say "import of gnuradio.semcom failed"; exit 1; }
say "ready: $venv (GNU Radio $("$venv/bin/python" -c 'from gnuradio import gr; print(gr.version())'))"
