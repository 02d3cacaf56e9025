# shellcheck shell=bash disable=SC2154 # prog, name, key_input: set by the builder
# rootfs/cache.sh: the build cache shared by the test rootfs builders (sourced, not run).
#
# A builder sets `name` (a readable prefix) and `key_input` (everything its output depends on),
# defines build_into DIR (writes the images into DIR), then calls cached_build IMAGE_FILE.
# The result lives in
#
#   ${VMM_ROOTFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm/rootfs}/<name>-<hash>/
#
# and only appears there, by an atomic rename of a finished temp dir, once the build has
# succeeded, so an interrupted build is never reused. cached_build prints the image's path as
# the last line of stdout; all build chatter goes to stderr.

die() { # die MESSAGE: one line on stderr, exit 125
	echo "$prog: $*" >&2
	exit 125
}
say() { echo "[$prog] $*" >&2; }

# Undo what an interrupted build may have left mounted under $1 (debootstrap mounts proc and
# sys in its target), deepest first, so rm never walks into them.
unmount_under() {
	local m
	while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done < <(awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r)
}

# cached_build IMAGE_FILE [--force]: build (unless cached) and print <cache dir>/IMAGE_FILE.
cached_build() {
	local image=$1 force=${2:-}
	local hash root dir tmp
	hash=$(printf '%s' "$key_input" | sha256sum | cut -c1-16)
	root=${VMM_ROOTFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm/rootfs}
	dir="$root/$name-$hash"
	if [[ -e $dir/done && $force != --force ]]; then
		echo "$dir/$image"
		return 0
	fi
	mkdir -p "$root"
	# One builder per key: a concurrent caller waits, then finds the finished entry.
	exec 9>"$root/.$name-$hash.lock"
	flock 9
	if [[ -e $dir/done && $force != --force ]]; then
		echo "$dir/$image"
		return 0
	fi
	# With the lock held, a temp dir of this key is what a killed build (SIGKILL, power loss)
	# left behind: remove it.
	local stale
	for stale in "$root/.tmp-$name-$hash-"*; do
		[[ -d $stale ]] || continue
		unmount_under "$stale"
		rm -rf --one-file-system "$stale"
	done
	tmp=$(mktemp -d "$root/.tmp-$name-$hash-XXXXXX")
	# shellcheck disable=SC2064 # expand $tmp now: it is local
	trap "unmount_under '$tmp'; rm -rf --one-file-system '$tmp'" EXIT
	trap 'exit 130' INT TERM
	mkdir "$tmp/out"
	local t0=$SECONDS
	build_into "$tmp/out" "$tmp"
	[[ -f $tmp/out/$image ]] || die "build finished without $image"
	date -u +'%Y-%m-%dT%H:%M:%SZ' >"$tmp/out/done"
	if [[ -e $dir ]]; then # --force: swap the old entry out
		mv -T "$dir" "$tmp/old"
	fi
	mv -T "$tmp/out" "$dir"
	say "built $dir in $((SECONDS - t0))s: $(du -sh --apparent-size "$dir/$image" | cut -f1) $image"
	echo "$dir/$image"
}
