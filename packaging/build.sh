#!/usr/bin/env bash
# Build the StrokeLens workstation installer for Linux: a one-folder PyInstaller bundle and a
# .deb that installs it under /opt/strokelens, with `strokelens` on the PATH and a menu entry.
#
#   bash packaging/build.sh            -> dist/strokelens/ (the bundle), dist/strokelens_VERSION_amd64.deb
#
# Everything comes from the repo's own files: a build venv made from requirements.lock and
# packaging/requirements.lock (hashed), StrokeLens installed into it (not editable), then
# packaging/strokelens.spec. The .deb's Depends are derived from the bundle itself (ldd on every
# ELF file in it, each library found outside the bundle mapped to its package with dpkg -S; see
# docs/installer.md). Work files go to build/installer/ (the venv is reused by the next build).
# It prints the sizes; `strokelens --self-test` checks the result (tests/test_packaging.py).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=build/installer
venv=$work/venv
dist=dist
version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
deb=$dist/strokelens_${version}_amd64.deb

mkdir -p "$work" "$dist"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q -r requirements.lock
"$venv/bin/pip" install -q -r packaging/requirements.lock
# a regular install (an editable one maps strokelens.* through an import hook PyInstaller skips);
# --force-reinstall: the same version number must still pick up this tree's changes. Only when
# the tree changed: a reinstall makes every module newer, and PyInstaller then redoes its whole
# analysis (most of a build's time)
stamp=$(git ls-files -s -- core app training resources pyproject.toml | sha256sum | cut -c1-16)
stamp=$stamp-$(git diff HEAD -- core app training resources pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$venv/strokelens.stamp" 2>/dev/null)" != "$stamp" ]; then
  "$venv/bin/pip" install -q --no-deps --no-build-isolation --force-reinstall .
  rm -rf build/lib build/bdist.* ./*.egg-info  # setuptools' leftovers of that install
  echo "$stamp" >"$venv/strokelens.stamp"
fi

echo "== PyInstaller bundle"
"$venv/bin/pyinstaller" --noconfirm --log-level WARN --distpath "$dist" --workpath "$work/pyinstaller" \
  packaging/strokelens.spec
bundle=$dist/strokelens

echo "== Depends (ldd on the bundle's ELF files, dpkg -S on what lies outside it)"
libs=$work/system-libs.txt
: >"$libs"
missing=()
while IFS= read -r -d '' file; do
  head -c 4 "$file" | grep -q $'\x7fELF' || continue
  while read -r line; do
    case "$line" in
      *"not found"*) missing+=("${file#"$bundle"/}: ${line%% *}") ;;
      *"=> /"*)
        path=${line#*=> }
        path=${path%% (*}
        case "$(readlink -f "$path")" in "$(readlink -f "$bundle")"/*) ;; *) echo "$path" >>"$libs" ;; esac
        ;;
    esac
  done < <(LD_LIBRARY_PATH="$bundle/_internal" ldd "$file" 2>/dev/null || true)
done < <(find "$bundle" -type f \( -name '*.so*' -o -perm -u+x \) -print0)
if [ ${#missing[@]} -gt 0 ]; then
  printf 'unresolved libraries (install the package that ships them, then rebuild):\n' >&2
  printf '  %s\n' "${missing[@]}" | sort -u >&2
  exit 1
fi
packages=()
for path in $(sort -u "$libs"); do
  owner=""
  # usrmerge: a library ldd finds under /lib may be registered under /usr/lib, or the reverse
  for candidate in "$path" "$(readlink -f "$path")" "/usr${path#/usr}" "${path#/usr}"; do
    owner=$(dpkg -S "$candidate" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$owner" ] && break
  done
  if [ -z "$owner" ]; then
    echo "no Debian package ships $path (needed by the bundle)" >&2
    exit 1
  fi
  packages+=("$owner")
done
glibc=$(dpkg-query -W -f='${Version}' libc6 | cut -d- -f1)
depends=$(printf '%s\n' "${packages[@]}" | sort -u | grep -vx libc6 | sed 's/$/,/' | tr '\n' ' ')
depends="libc6 (>= $glibc), ${depends%, }"
echo "$depends" >"$work/depends.txt"
echo "Depends: $depends"

echo "== .deb"
root=$work/deb-root
rm -rf "$root"
mkdir -p "$root/DEBIAN" "$root/opt" "$root/usr/bin" "$root/usr/share/applications" \
  "$root/usr/share/icons/hicolor/scalable/apps" "$root/usr/share/icons/hicolor/256x256/apps"
cp -a "$bundle" "$root/opt/strokelens"
ln -s ../../opt/strokelens/strokelens "$root/usr/bin/strokelens"  # relative: valid under dpkg -x too
cp packaging/strokelens.desktop "$root/usr/share/applications/"
cp packaging/strokelens.svg "$root/usr/share/icons/hicolor/scalable/apps/"
QT_QPA_PLATFORM=offscreen "$venv/bin/python" packaging/render_icon.py packaging/strokelens.svg \
  "$root/usr/share/icons/hicolor/256x256/apps/strokelens.png" 256
installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: strokelens
Version: $version
Architecture: amd64
Maintainer: StrokeLens developers <strokelens@localhost>
Installed-Size: $installed_kb
Depends: $depends
Section: science
Priority: optional
Description: CT-perfusion infarct-core segmentation workstation
 StrokeLens segments the ischemic infarct core in CT-perfusion scans with an
 ensemble of PSPNet models, lets a reviewer check and correct the masks and
 trains new ensembles. Runs offline on the CPU; ships a demo ensemble and a
 digital phantom. Check an installation with "strokelens --self-test".
EOF
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null

echo "== sizes"
bundle_bytes=$(du -sb "$bundle" | cut -f1)
deb_bytes=$(stat -c %s "$deb")
printf 'bundle %s: %d MB (budget 1200)\n' "$bundle" $((bundle_bytes / 1000000))
printf 'deb    %s: %d MB (budget 500)\n' "$deb" $((deb_bytes / 1000000))
[ "$bundle_bytes" -le 1200000000 ] && [ "$deb_bytes" -le 500000000 ] || {
  echo "over budget" >&2
  exit 1
}
echo "built in $repo"
