#!/usr/bin/env bash
# kernel-config/build.sh — build the vmm guest kernel, cached outside the tree.
#
# Builds vmlinux (PVH-bootable ELF) and arch/x86/boot/bzImage from Debian's
# /usr/src/linux-source-6.1.tar.xz with the config fragment vmm.config applied
# on top of `make allnoconfig`. Results are cached by a content hash:
#
#   ${VMM_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm/kernel}/<key>/
#       vmlinux   stripped ELF; PT_NOTE kept (XEN_ELFNOTE_PHYS32_ENTRY, type 0x12)
#       bzImage   x86 boot protocol image
#       config    the final .config
#       done      marker; the directory only appears (atomic rename) once complete
#
#   key = sha256(vmm.config + build.sh + tarball size/mtime + dpkg version of
#                linux-source-6.1)
#
# If <key>/done exists nothing is built. The cache directory is always the LAST
# line on stdout; all build chatter goes to stderr or <tmp>/build.log, so:
#
#   KDIR=$(kernel-config/build.sh | tail -n1)
#
# Options:
#   --print-dir   print the cache directory that would be used; build nothing
#   --force       rebuild even if the cache entry exists (replaces it)
#   -h, --help    this text
#
# Environment: VMM_KERNEL_CACHE (cache root), JOBS (default: nproc).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"
frag="$here/vmm.config"
pkg=linux-source-6.1
tarball=/usr/src/$pkg.tar.xz

die() { echo "build.sh: error: $*" >&2; exit 1; }
say() { echo "[kernel] $*" >&2; }

print_dir=0
force=0
for arg in "$@"; do
	case $arg in
	--print-dir) print_dir=1 ;;
	--force) force=1 ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$self"; exit 0 ;;
	*) die "unknown option '$arg' (try --help)" ;;
	esac
done

[[ -r $frag ]] || die "missing config fragment $frag"
[[ -r $tarball ]] || die "$tarball not found: apt-get install $pkg"

# ---- cache key -------------------------------------------------------------
pkg_version=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || echo unknown)
key=$(
	{
		echo "== vmm.config"; cat "$frag"
		echo "== build.sh"; cat "$self"
		echo "== source"; stat -L -c '%s %Y' "$tarball"; echo "$pkg $pkg_version"
	} | sha256sum | cut -c1-64
)
cache_root=${VMM_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm/kernel}
dir="$cache_root/$key"

if ((print_dir)); then
	echo "$dir"
	exit 0
fi

if [[ -e $dir/done ]] && ((!force)); then
	echo "$dir"
	exit 0
fi

# ---- prerequisites ---------------------------------------------------------
missing=()
for tool in make gcc ld bc flex bison perl tar xz strip readelf; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
[[ -e /usr/include/libelf.h ]] || missing+=("libelf-dev")
[[ -e /usr/include/openssl/ssl.h ]] || missing+=("libssl-dev")
((${#missing[@]} == 0)) || die "missing build tools: ${missing[*]} (apt-get install build-essential bc bison flex libelf-dev libssl-dev)"

mkdir -p "$cache_root"

# One builder per key: a concurrent caller waits, then finds <key>/done.
exec 9>"$cache_root/.$key.lock"
flock 9
if [[ -e $dir/done ]] && ((!force)); then
	echo "$dir"
	exit 0
fi

# ---- build in a temp dir next to the cache entry (same fs => atomic rename)
tmp=$(mktemp -d "$cache_root/.tmp-${key:0:16}-XXXXXX")
log="$tmp/build.log"
src="$tmp/src"
out="$tmp/out"
ok=0
cleanup() {
	rm -rf "$src" "$out"
	if ((ok)); then rm -rf "$tmp"; fi # on failure only build.log and config stay
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { # fail <one-line message>: show the log tail, then the message last
	if [[ -s $log ]]; then
		echo "---- last 40 lines of $log ----" >&2
		tail -n 40 "$log" >&2
		echo "----" >&2
	fi
	die "$* (full log: $log)"
}

step() { # step <description> <command...>: run with output to the log
	local what=$1
	shift
	say "$what"
	echo "==== $what: $*" >>"$log"
	"$@" >>"$log" 2>&1 || fail "$what failed"
}

jobs=${JOBS:-$(nproc)}
t0=$SECONDS
say "cache key $key ($pkg $pkg_version), building in $tmp"

mkdir -p "$src" "$out"
step "extracting $tarball" tar -xf "$tarball" -C "$src" --strip-components=1

# Reproducible-ish build identity; no host name/user/date in the banner.
kmake=(make -C "$src" ARCH=x86_64 KBUILD_BUILD_USER=vmm KBUILD_BUILD_HOST=vmm
	KBUILD_BUILD_TIMESTAMP="$pkg $pkg_version")

step "make allnoconfig + vmm.config" env KCONFIG_ALLCONFIG="$frag" "${kmake[@]}" allnoconfig
cp "$src/.config" "$tmp/config"

# Every line of the fragment must survive: Kconfig silently drops options whose
# dependencies are unmet. "X=n" and "# X is not set" must end up off (and name
# a real symbol, so a typo does not pass silently).
dropped=()
while IFS= read -r line; do
	if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
		sym=${BASH_REMATCH[1]} val=${BASH_REMATCH[2]}
		if [[ $val == n ]]; then
			grep -q "^$sym=" "$src/.config" && dropped+=("$sym=n (is $(grep "^$sym=" "$src/.config" | cut -d= -f2-))")
		else
			grep -qxF -- "$line" "$src/.config" || dropped+=("$line (is $(grep "^$sym=" "$src/.config" | cut -d= -f2- || echo unset))")
		fi
	elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
		sym=${BASH_REMATCH[1]}
		if grep -q "^$sym=" "$src/.config"; then
			dropped+=("$sym=n (is $(grep "^$sym=" "$src/.config" | cut -d= -f2-))")
		elif ! grep -rqE --include='Kconfig*' "^[[:space:]]*(menu)?config[[:space:]]+${sym#CONFIG_}[[:space:]]*$" "$src"; then
			dropped+=("$sym (no such Kconfig symbol)")
		fi
	fi
done <"$frag"
if ((${#dropped[@]})); then
	msg=$(printf '%s, ' "${dropped[@]}")
	die "Kconfig dropped vmm.config options (unmet dependencies?): ${msg%, } [final config: $tmp/config]"
fi
say "config verified: all $(grep -cE '^(CONFIG_|# CONFIG_.* is not set$)' "$frag") fragment options kept"

step "make -j$jobs bzImage vmlinux" "${kmake[@]}" -j"$jobs" bzImage vmlinux

# Stage the artifacts. strip drops .symtab/.strtab only (there is no debug
# info); allocated sections and program headers, including the PT_NOTE with
# the PVH entry note, stay.
step "strip vmlinux" strip --strip-all -o "$out/vmlinux" "$src/vmlinux"
cp "$src/arch/x86/boot/bzImage" "$out/bzImage"
cp "$src/.config" "$out/config"

notes=$(readelf -W -n "$out/vmlinux" 2>&1) || fail "readelf -n failed on stripped vmlinux"
grep -qE 'Xen[[:space:]].*(0x00000012|PHYS32_ENTRY)' <<<"$notes" ||
	fail "stripped vmlinux lacks the Xen PHYS32_ENTRY (0x12) ELF note; PVH boot would not work"
readelf -W -l "$out/vmlinux" | grep -q '^ *NOTE ' || fail "stripped vmlinux has no PT_NOTE program header"

date -u +'%Y-%m-%dT%H:%M:%SZ' >"$out/done"

# Publish atomically. With --force an existing entry is swapped out first.
if [[ -e $dir ]]; then
	old="$tmp/old"
	mv -T "$dir" "$old"
	mv -T "$out" "$dir"
	rm -rf "$old"
else
	mv -T "$out" "$dir"
fi
ok=1

secs=$((SECONDS - t0))
say "built in $((secs / 60))m$((secs % 60))s: vmlinux $(stat -c %s "$dir/vmlinux") bytes, bzImage $(stat -c %s "$dir/bzImage") bytes"
echo "$dir"
