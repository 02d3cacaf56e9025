# podman 4.3 with conmon, from Debian, drives vmm-oci (docs/oci.md) with --runtime vmm, where
# the KVM is (inside the nest here). Sourced by boot-tests.sh; the set-up is engine-lib.sh's. Each
# podman run or create boots a VM: the list is kept short.
. "$here_parts/engine-lib.sh"

# The sections (units of resume, boot-tests.sh), each on its own after podman_ready.
# run: exit statuses, capabilities, the user, limits, the seccomp profile, a read-only root
engine_run() {
	pm run --rm --network none localhost/bb echo hi-from-podman </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman run --rm --runtime vmm: echo's output and exit status 0" \
		eval '[ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = hi-from-podman ]'
	pm run --rm --network none localhost/bb sh -c 'exit 7' </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman run: the container's exit status 7 is podman's" eval '[ $rc -eq 7 ]'

	pm run --rm --network none localhost/bb /no/such/command </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman run of a command not in the image: podman's exit status is 127" \
		eval '[ $rc -eq 127 ]'

	pm run --rm --network none --cap-drop ALL -u 1000:1000 localhost/bb \
		sh -c 'grep -E "^(CapEff|Seccomp):" /proc/self/status; echo "ids $(id -u):$(id -g) nofile $(ulimit -n)"; ping -c 1 -W 5 127.0.0.1 >/dev/null 2>&1 && echo ping-ok || echo ping-refused; swapon /etc/passwd 2>&1; true' \
		</dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	# swapon: podman's default profile answers EPERM whatever the capabilities; without it the
	# guest kernel (no CONFIG_SWAP) answers ENOSYS (the --read-only run below, unconfined)
	expect "podman run --cap-drop ALL -u 1000:1000: no capabilities (ping refused), podman's default seccomp profile installed and refusing swapon (EPERM), the user and the nofile limit" \
		eval '[ $rc -eq 0 ] && grep -q "^CapEff:[[:space:]]*0000000000000000" "$tmp/out" && grep -q "^Seccomp:[[:space:]]*2" "$tmp/out" && grep -qx "ids 1000:1000 nofile 20000" "$tmp/out" && grep -qx ping-refused "$tmp/out" && grep -q "swapon: .*Operation not permitted" "$tmp/out"'

	pm run --rm --network none --read-only --security-opt seccomp=unconfined localhost/bb \
		sh -c 'echo x >/new; echo w >/tmp/w && cat /tmp/w; grep "^Seccomp:" /proc/self/status; swapon /etc/passwd 2>&1; true' \
		</dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman run --read-only: the root refuses writes (EROFS), podman's tmpfs /tmp takes them, the host's tree is unchanged" \
		eval '[ $rc -eq 0 ] && grep -q "/new: Read-only file system" "$tmp/err" && grep -qx w "$tmp/out" && [ -z "$(find "$tmp/storage" -path "*/new" 2>/dev/null | head -n 1)" ]'
	expect "podman run --security-opt seccomp=unconfined: no filter, and swapon reaches the guest kernel (ENOSYS: no swap), so the EPERM above was the profile's" \
		eval '[ $rc -eq 0 ] && grep -q "^Seccomp:[[:space:]]*0" "$tmp/out" && grep -q "swapon: .*Function not implemented" "$tmp/out"'
}

# vm: volumes, stdin, the VM's resources, --init, a terminal
engine_vm() {
	mkdir -p "$tmp/vol" "$tmp/volro"
	echo host-data >"$tmp/volro/in"
	echo -n abc | pm run --rm -i --network none -v "$tmp/vol:/vol" -v "$tmp/volro/in:/in.txt:ro" localhost/bb \
		sh -c 'cat >/vol/from-stdin; cat /in.txt; echo w >/vol/out; grep -c . /etc/hosts >/dev/null && hostname' \
		>"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman run -i -v DIR:/vol -v FILE:/in.txt:ro: stdin, a file volume, writes land on the host" \
		eval '[ $rc -eq 0 ] && grep -qx host-data "$tmp/out" && [ "$(cat "$tmp/vol/from-stdin")" = abc ] && [ "$(cat "$tmp/vol/out")" = w ]'

	# one VM for the resources, --init and a named volume
	pm volume create vnamed >"$tmp/out" 2>"$tmp/err"
	pm run --rm --network none --memory 256m --cpus 2 --init --cap-add NET_RAW -v vnamed:/data localhost/bb \
		sh -c 'echo named >/data/f; echo "cpus $(nproc)"; grep MemTotal /proc/meminfo; tr "\0" " " </proc/$PPID/cmdline; echo; ping -c 1 -W 5 127.0.0.1 >/dev/null 2>&1 && echo ping-ok' \
		</dev/null >"$tmp/out" 2>>"$tmp/err"
	rc=$?
	vdir=$(pm volume inspect -f '{{.Mountpoint}}' vnamed 2>>"$tmp/err")
	memkb=$(awk '/^MemTotal:/ {print $2}' "$tmp/out")
	echo "# podman --memory 256m: the guest's MemTotal is ${memkb:-?} kB"
	expect "podman run --memory 256m --cpus 2 --init --cap-add NET_RAW -v NAMED:/data: 2 vCPUs, a 256 MiB guest, catatonit as the parent, ping works, the write in the volume" \
		eval '[ $rc -eq 0 ] && grep -qx "cpus 2" "$tmp/out" && [ "${memkb:-0}" -gt 180000 ] && [ "${memkb:-0}" -le 262144 ] && grep -q "^/run/podman-init -- sh -c" "$tmp/out" && grep -qx ping-ok "$tmp/out" && [ "$(cat "$vdir/f" 2>/dev/null)" = named ]'

	under_tty "$tmp/out" "$here_parts/tty-resize.sh" "$tmp/out.raw" "${pm_cmd[@]}" run -it --rm \
		--network none localhost/bb sh -c "$tty_probe"
	expect "podman run -it (a terminal from script): the container has a pty of the terminal's size (33x111), and a resize (44x122) reaches it" \
		eval '[ $rc -eq 0 ] && grep -q "start 33 111" "$tmp/out" && grep -q "^resized 44 122 on /dev/pts/" "$tmp/out"'
}

# detached: a detached container's pause, exec (-it), diff, stop, cp and rm
engine_detached() {
	pm run -d --name vd1 --network none localhost/bb \
		sh -c 'trap "echo term-trapped; exit 0" TERM; echo d1-up; while :; do sleep 1; done' </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	up=false
	wait_log vd1 d1-up && up=true
	expect "podman run -d: the container runs, podman logs shows its stdout" eval '[ $rc -eq 0 ] && $up'
	pm pause vd1 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	st1=$(pm inspect -f '{{.State.Status}}' vd1 2>>"$tmp/err")
	pm unpause vd1 >>"$tmp/out" 2>>"$tmp/err"
	rc2=$?
	st2=$(pm inspect -f '{{.State.Status}}' vd1 2>>"$tmp/err")
	expect "podman pause and unpause: the VM pauses and goes on (paused, then running)" \
		eval '[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ "$st1" = paused ] && [ "$st2" = running ]'
	pm exec vd1 sh -c 'echo exec-ok; echo made >/made-by-exec; grep -E "^(CapBnd|Seccomp):" /proc/self/status; exit 9' \
		</dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	bnd=$(awk '/^CapBnd:/ {print $2}' "$tmp/out")
	expect "podman exec: output, exit status 9, and the container's settings (no CAP_SYS_ADMIN, its seccomp profile)" \
		eval '[ $rc -eq 9 ] && grep -qx exec-ok "$tmp/out" && [ -n "$bnd" ] && [ $(((16#${bnd:-0} >> 21) & 1)) -eq 0 ] && grep -q "^Seccomp:[[:space:]]*2" "$tmp/out"'
	under_tty "$tmp/out" "$here_parts/tty-resize.sh" "$tmp/out.raw" "${pm_cmd[@]}" exec -it vd1 \
		sh -c "$tty_probe"
	expect "podman exec -it: the exec'd process has a pty of the terminal's size, and a resize reaches it" \
		eval '[ $rc -eq 0 ] && grep -q "start 33 111" "$tmp/out" && grep -q "^resized 44 122 on /dev/pts/" "$tmp/out"'
	pm diff vd1 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman diff of the running container lists the file the exec wrote" \
		eval '[ $rc -eq 0 ] && grep -q "^A /made-by-exec" "$tmp/out"'
	# podman cp of a running container joins the mount namespace of its process, vmm's, which is
	# rooted at the container's root (--enter-rootfs): both ways, and the host's / untouched
	echo from-host >"$tmp/cp-in"
	rm -f "$tmp/cp-run"
	pm cp "$tmp/cp-in" vd1:/cp-in >"$tmp/out" 2>"$tmp/err"
	rc=$?
	pm cp vd1:/made-by-exec "$tmp/cp-run" >>"$tmp/out" 2>>"$tmp/err"
	rc2=$?
	got=$(pm exec vd1 cat /cp-in 2>>"$tmp/err" </dev/null)
	expect "podman cp into and out of the running container: the exec reads the copied file, the copy out has what the exec wrote, the host's / has neither" \
		eval '[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ "$got" = from-host ] && [ "$(cat "$tmp/cp-run" 2>/dev/null)" = made ] && [ ! -e /cp-in ]'
	pm stop -t 60 vd1 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	st=$(pm inspect -f '{{.State.ExitCode}}' vd1 2>>"$tmp/err")
	pm logs vd1 >"$tmp/out" 2>&1
	expect "podman stop: TERM reaches the container's trap, exit code 0" \
		eval '[ $rc -eq 0 ] && [ "$st" = 0 ] && grep -q term-trapped "$tmp/out"'
	rm -f "$tmp/cp-out"
	pm cp vd1:/made-by-exec "$tmp/cp-out" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman cp from the stopped container: the file the exec wrote" \
		eval '[ $rc -eq 0 ] && [ "$(cat "$tmp/cp-out" 2>/dev/null)" = made ]'
	pm rm -f vd1 >"$tmp/out" 2>"$tmp/err"
	rc=$?
	expect "podman rm: the container and vmm-oci's records are gone" \
		eval '[ $rc -eq 0 ] && [ -z "$(ls /run/vmm-oci 2>/dev/null)" ]'
}

# net: podman's default network (CNI bridge, portmap's DNAT): a web server in the VM on -p
engine_net() {
	pm run -d --name web -p 8080:80 localhost/bb \
		sh -c 'mkdir -p /www && echo hello-from-vm >/www/index.html && exec httpd -f -p 80 -h /www' \
		</dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	got=
	for _ in $(seq 150); do
		got=$(/usr/bin/python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:8080/", timeout=10).read().decode().strip())' 2>>"$tmp/err.http") && break
		kill -0 "$(pm inspect -f '{{.State.Pid}}' web 2>/dev/null)" 2>/dev/null || break
		sleep 2
	done
	ip=$(pm inspect -f '{{.NetworkSettings.IPAddress}}' web 2>>"$tmp/err")
	tail -n 3 "$tmp/err.http" >>"$tmp/err" 2>/dev/null
	expect "podman run -p 8080:80 on podman's default network: the VM's httpd answers at localhost:8080 (container address $ip)" \
		eval '[ $rc -eq 0 ] && [ "$got" = hello-from-vm ]'
	pm rm -f web >"$tmp/out" 2>>"$tmp/err"
}

# kill: kill -s TERM reaches a trap that goes on; then rm -f of the paused container; restart of
# a process that ignores TERM (the KILL path), then rm -f of the running one and of one only
# created
engine_kill() {
	pm run -d --name vd3 --network none localhost/bb \
		sh -c 'trap "echo term-seen" TERM; echo d3-up; while :; do sleep 1; done' </dev/null >"$tmp/out" 2>"$tmp/err"
	wait_log vd3 d3-up
	pm kill -s TERM vd3 >"$tmp/out" 2>>"$tmp/err"
	rc=$?
	seen=false
	wait_log vd3 term-seen && seen=true
	st=$(pm inspect -f '{{.State.Status}}' vd3 2>>"$tmp/err")
	expect "podman kill -s TERM: the container's trap sees it and the container goes on running" \
		eval '[ $rc -eq 0 ] && $seen && [ "$st" = running ]'
	pm pause vd3 >"$tmp/out" 2>>"$tmp/err"
	rc=$?
	pm rm -f vd3 >>"$tmp/out" 2>>"$tmp/err"
	rc2=$?
	expect "podman rm -f of a paused container: gone, and its VM with it" \
		eval '[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && ! pm inspect vd3 >/dev/null 2>&1 && [ -z "$(ls /run/vmm-oci 2>/dev/null)" ] && ! pgrep -x vmm >/dev/null'

	pm run -d --name vd2 --network none localhost/bb \
		sh -c 'trap "" TERM; echo d2-up; while :; do sleep 1; done' </dev/null >"$tmp/out" 2>"$tmp/err"
	wait_log vd2 d2-up
	pm restart -t 3 vd2 >"$tmp/out" 2>>"$tmp/err"
	rc=$?
	up=false
	wait_log vd2 d2-up 2 && up=true
	st=$(pm inspect -f '{{.State.Status}}' vd2 2>>"$tmp/err")
	expect "podman restart -t 3 of a process that ignores TERM: killed, started again, running" \
		eval '[ $rc -eq 0 ] && $up && [ "$st" = running ]'
	pm create --name vc1 --network none localhost/bb true >"$tmp/out" 2>>"$tmp/err"
	rc=$?
	pm rm -f vd2 >>"$tmp/out" 2>>"$tmp/err"
	rc2=$?
	pm rm -f vc1 >>"$tmp/out" 2>>"$tmp/err"
	rc3=$?
	expect "podman rm -f of a running and of a created container: both gone, no vmm left" \
		eval '[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ $rc3 -eq 0 ] && [ -z "$(ls /run/vmm-oci 2>/dev/null)" ] && ! pgrep -x vmm >/dev/null'
}

if podman_ready; then
	section run engine_run
	section vm engine_vm
	section detached engine_detached
	section net engine_net
	section kill engine_kill
fi
