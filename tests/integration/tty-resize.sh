#!/bin/sh
# tty-resize.sh TYPESCRIPT COMMAND...: run under script(1) (engine-lib.sh's under_tty), whose
# pty is this shell's terminal and whose output goes to TYPESCRIPT. Sets the terminal to 33 rows
# and 111 columns, runs COMMAND on it, and once COMMAND has printed "start 33 111" (the size
# reached its container) makes it 44x122, as a user's window resize does: the kernel sends
# SIGWINCH to the terminal's foreground group, COMMAND's too. Exits with COMMAND's status;
# without the "start" line within 300 s it resizes anyway, and the container's own check fails.
ts=$1
shift
stty rows 33 cols 111
"$@" </dev/tty &
pid=$!
i=0
until grep -q "start 33 111" "$ts" 2>/dev/null || [ $i -ge 3000 ] || ! kill -0 $pid 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
stty rows 44 cols 122
wait $pid
