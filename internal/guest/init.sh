#!/bin/sh
# /init of vscardkit's test guest (busybox sh). It loads the USB modules,
# waits for QEMU's CCID reader (08e6:4433), starts pcscd, runs the scenario
# the kernel command line names and powers the VM off.
#
# Parameters come from the kernel command line as vscard.NAME=VALUE (the
# kernel does not pass dotted parameters to init, so they are read from
# /proc/cmdline) and are available here as $P_NAME:
#   vscard.scenario=NAME[,NAME...]  the scenarios to run, in order, until
#                         one fails (scenario_NAME below)
#   vscard.timeout=SEC    power off after SEC seconds whatever happens (120)
#   vscard.debug=1        run pcscd with --debug and print its log (and
#                         udevd's) at the end
#   vscard.udev=1         run systemd-udevd (an image built with
#                         BuildOptions.Udev) before pcscd, so that pcscd
#                         sees USB readers come and go
#   vscard.net=1          load the e1000 driver and give eth0 the address
#                         QEMU's user-mode network (-netdev user) expects,
#                         10.0.2.15/24
# plus each scenario's own, listed with it.
#
# Output on the serial console, one marker per line:
#   VSCARD-EVENT NAME [key=value...]  something happened (the host may react)
#   VSCARD-BEGIN SCENARIO
#   VSCARD-RESULT KEY=VALUE           a result (the value is the rest of the line)
#   VSCARD-END SCENARIO rc=N          the scenario finished; 0 is success
#                                     ("boot" or "watchdog" when the guest
#                                     failed outside a scenario)
#   VSCARD-ERROR MESSAGE              why it failed
#   VSCARD-LOG TEXT                   a program's log
#
# To add a scenario, write a function scenario_NAME that prints results with
# `result KEY VALUE` and returns non-zero on failure.

export PATH=/usr/sbin:/usr/bin
/usr/bin/busybox --install -s 2>/dev/null

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/pcscd /tmp
exec </dev/null

P_scenario=none
P_timeout=120
P_debug=0
P_udev=0
P_net=0
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	vscard.*=*)
		k=${arg%%=*}
		k=${k#vscard.}
		case "$k" in
		'' | *[!a-z0-9_]*) continue ;;
		esac
		eval "P_$k=\${arg#*=}"
		;;
	esac
done

event() { echo "VSCARD-EVENT $*"; }
result() { echo "VSCARD-RESULT $1=$2"; }
error() { echo "VSCARD-ERROR $*"; }

# now_us prints the monotonic clock (CLOCK_MONOTONIC, from
# /proc/timer_list) in microseconds, or /proc/uptime's 10 ms clock when
# timer_list is missing.
now_us() {
	if [ -r /proc/timer_list ]; then
		awk '/^now at /{ printf "%d\n", $3 / 1000; exit }' /proc/timer_list
	else
		awk '{ printf "%d\n", $1 * 1000000; exit }' /proc/uptime
	fi
}

# uptime_ms prints the time since boot in milliseconds.
uptime_ms() { echo $(($(now_us) / 1000)); }

# retry N SEC CMD [ARG...] runs CMD until it succeeds, at most N times, SEC
# seconds apart, and fails when it never does.
retry() {
	local tries=$1 pause=$2
	shift 2
	until "$@"; do
		tries=$((tries - 1))
		[ $tries -gt 0 ] || return 1
		sleep "$pause"
	done
}

# finish powers the VM off.
finish() {
	if [ "$P_debug" = 1 ] && [ -f /tmp/pcscd.log ]; then
		sed 's/^/VSCARD-LOG pcscd: /' /tmp/pcscd.log
	fi
	if [ "$P_debug" = 1 ] && [ -f /tmp/udevd.log ]; then
		sed 's/^/VSCARD-LOG udevd: /' /tmp/udevd.log
	fi
	# The client's log is short and is what a test of it needs.
	if [ -f /tmp/client.log ]; then
		sed 's/^/VSCARD-LOG vscclient-go: /' /tmp/client.log
	fi
	# Let the UART drain before the power goes.
	sleep 0.2
	poweroff -f
}

# fail_boot MSG reports a failure outside any scenario and powers off.
fail_boot() {
	error "$*"
	echo "VSCARD-END boot rc=1"
	finish
}

# reader_on_bus succeeds when QEMU's usb-ccid (08e6:4433) is on the USB bus.
# It uses only shell builtins: the hotplug scenario calls it many times a
# second.
reader_on_bus() {
	for d in /sys/bus/usb/devices/*; do
		[ -r "$d/idVendor" ] || continue
		read -r v <"$d/idVendor" 2>/dev/null || continue
		read -r p <"$d/idProduct" 2>/dev/null || continue
		if [ "$v:$p" = 08e6:4433 ]; then
			return 0
		fi
	done
	return 1
}

# start_udev starts systemd-udevd and waits for its control socket.
start_udev() {
	udevd=/usr/lib/systemd/systemd-udevd
	[ -x $udevd ] || {
		error "vscard.udev=1 but the image has no $udevd (build it with BuildOptions.Udev)"
		return 1
	}
	if [ "$P_debug" = 1 ]; then
		$udevd --debug >/tmp/udevd.log 2>&1 &
	else
		$udevd >/tmp/udevd.log 2>&1 &
	fi
	retry 250 0.02 test -S /run/udev/control || {
		error "systemd-udevd made no control socket after 5s"
		sed 's/^/VSCARD-ERROR udevd: /' /tmp/udevd.log | head -n 20
		return 1
	}
	event udev uptime_ms=$(uptime_ms)
}

# start_net loads the NIC driver and configures eth0 for QEMU's user-mode
# network (guest 10.0.2.15/24; the host's forwarded services are on that
# network too, such as a guestfwd address).
start_net() {
	insmod /lib/modules/e1000.ko || {
		error "insmod e1000 failed"
		return 1
	}
	ifconfig lo 127.0.0.1 up
	retry 250 0.02 test -e /sys/class/net/eth0 || {
		error "no eth0 after 5s (is -device e1000 on the QEMU command line?)"
		return 1
	}
	ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up || {
		error "ifconfig eth0 failed"
		return 1
	}
	event net uptime_ms=$(uptime_ms)
}

# list_readers prints the PC/SC reader names, one a line.
list_readers() {
	pcsc_scan -r 2>/dev/null | sed -n 's/^[0-9][0-9]*: //p'
}

# have_readers succeeds when pcscd lists a reader.
have_readers() { [ -n "$(list_readers)" ]; }

# hexstr turns opensc-tool's "3b:80:80:01:01" or "3B 80 80" into "3b808001".
hexstr() { tr -d ': \n' | tr 'A-F' 'a-f'; }

# atr_of N prints the ATR of the card in reader N (lower-case hex), or
# fails when there is no card.
atr_of() {
	out=$(opensc-tool -r "$1" -a 2>/dev/null) || return 1
	echo "$out" | grep -iE '^[0-9a-f]{2}(:[0-9a-f]{2})*$' | head -n 1 | hexstr
}

# Scenario wait_card: wait until a card is in the reader, for hosts whose
# client may announce its card after the guest has booted (a scenario that
# reads the card then runs next).
# Parameters: vscard.reader=N (0), vscard.card_timeout=SEC (20).
# Events: "card-present atr=HEX uptime_ms=MS". Results: wait_card_ms (how
# long the scenario waited).
scenario_wait_card() {
	reader=${P_reader:-0}
	start=$(uptime_ms)
	deadline=$((start + ${P_card_timeout:-20} * 1000))
	until atr=$(atr_of "$reader") && [ -n "$atr" ]; do
		if [ "$(uptime_ms)" -gt $deadline ]; then
			error "no card in reader $reader after ${P_card_timeout:-20}s"
			return 1
		fi
		sleep 0.05
	done
	now=$(uptime_ms)
	event card-present atr=$atr uptime_ms=$now
	result wait_card_ms $((now - start))
}

# Scenario readers: the PC/SC readers and the card in each.
# Results: readers=N, reader.I=NAME, card.I=present|absent,
# atr.I=HEX.
scenario_readers() {
	n=0
	list_readers >/tmp/readers
	while read -r name; do
		result "reader.$n" "$name"
		if atr=$(atr_of $n) && [ -n "$atr" ]; then
			result "card.$n" present
			result "atr.$n" "$atr"
		else
			result "card.$n" absent
		fi
		n=$((n + 1))
	done </tmp/readers
	result readers $n
	[ $n -gt 0 ]
}

# parse_apdu_responses reads opensc-tool -s output and prints one line per
# response: its data and status word in lower-case hex.
parse_apdu_responses() {
	awk '
	function flush() { if (have) print resp sw; have = 0; resp = "" }
	/^Sending: / { flush(); next }
	/^Received \(SW1=0x[0-9a-fA-F]+, SW2=0x[0-9a-fA-F]+\)/ {
		flush()
		match($0, /SW1=0x[0-9a-fA-F]+/); sw1 = substr($0, RSTART + 6, RLENGTH - 6)
		match($0, /SW2=0x[0-9a-fA-F]+/); sw2 = substr($0, RSTART + 6, RLENGTH - 6)
		sw = sprintf("%02s%02s", sw1, sw2); gsub(/ /, "0", sw)
		have = 1; next
	}
	have && /^[0-9A-Fa-f][0-9A-Fa-f]( [0-9A-Fa-f][0-9A-Fa-f])*/ {
		# A hex dump line: up to 16 "XX " groups, then the ASCII column.
		line = substr($0, 1, 48)
		n = split(line, f, " ")
		for (i = 1; i <= n; i++) if (f[i] ~ /^[0-9A-Fa-f][0-9A-Fa-f]$/) resp = resp f[i]
		next
	}
	END { flush() }
	' | tr 'A-F' 'a-f'
}

# Scenario apdu: send raw APDUs in one opensc-tool call.
# Parameters: vscard.apdus=HEX[,HEX...] (each APDU in hex),
# vscard.reader=N (0). Results: apdus=N, apdu.I=HEX (data and status word of
# response I), opensc_rc=N.
scenario_apdu() {
	[ -n "$P_apdus" ] || {
		error "vscard.apdus is empty"
		return 2
	}
	set --
	for a in $(echo "$P_apdus" | tr ',' ' '); do
		set -- "$@" -s "$a"
	done
	opensc-tool -c default -r "${P_reader:-0}" "$@" >/tmp/apdu.out 2>/tmp/apdu.err
	rc=$?
	result opensc_rc $rc
	n=0
	parse_apdu_responses </tmp/apdu.out >/tmp/apdu.resp
	while read -r r; do
		result "apdu.$n" "$r"
		n=$((n + 1))
	done </tmp/apdu.resp
	result apdus $n
	if [ $rc != 0 ]; then
		sed 's/^/VSCARD-ERROR opensc-tool: /' /tmp/apdu.err | head -n 20
	fi
	return $rc
}

# Scenario latency: COUNT copies of one APDU in ONE opensc-tool call, timed
# with the monotonic clock, minus a call with a single APDU (process start,
# PC/SC connect and card init).
# Parameters: vscard.count=N (200), vscard.apdu=HEX (SELECT of the PIV
# application), vscard.reader=N (0).
# Results: count=N, total_ms (the COUNT call), base_ms (the 1-APDU call),
# per_apdu_us = (total - base) / (COUNT - 1), responses=N (how many
# responses opensc-tool printed).
scenario_latency() {
	count=${P_count:-200}
	apdu=${P_apdu:-00A4040009A00000030800001000}
	reader=${P_reader:-0}
	set --
	i=0
	while [ $i -lt "$count" ]; do
		set -- "$@" -s "$apdu"
		i=$((i + 1))
	done
	t0=$(now_us)
	opensc-tool -c default -r "$reader" -s "$apdu" >/dev/null 2>&1 || {
		error "opensc-tool (1 APDU) failed"
		return 1
	}
	t1=$(now_us)
	opensc-tool -c default -r "$reader" "$@" >/tmp/latency.out 2>/tmp/latency.err
	rc=$?
	t2=$(now_us)
	if [ $rc != 0 ]; then
		sed 's/^/VSCARD-ERROR opensc-tool: /' /tmp/latency.err | head -n 20
		return $rc
	fi
	responses=$(grep -c '^Received' /tmp/latency.out)
	base=$((t1 - t0))
	total=$((t2 - t1))
	result count "$count"
	result responses "$responses"
	result base_ms $((base / 1000))
	result total_ms $((total / 1000))
	if [ "$count" -gt 1 ]; then
		result per_apdu_us $(((total - base) / (count - 1)))
	fi
	[ "$responses" = "$count" ]
}

# Scenario watch: report card removals and insertions as they happen.
# Parameters: vscard.changes=N (4): stop after N changes; vscard.reader=N
# (0); vscard.method=poll|pcsc_scan (poll); vscard.poll_ms=MS (100).
# Events: "card state=present [atr=HEX]" or "card state=absent", the first
# one for the state at the start, then one per change.
# Results: changes=N, method.
# poll runs opensc-tool -a every poll_ms (one short process per poll, and
# the ATR with each insertion); pcsc_scan runs one pcsc_scan, which waits
# in SCardGetStatusChange, and turns its "Card removed/inserted" lines into
# events (no ATR: its ATR line comes in a different format).
scenario_watch() {
	want=${P_changes:-4}
	result method "${P_method:-poll}"
	case ${P_method:-poll} in
	poll) watch_poll ;;
	pcsc_scan) watch_pcsc_scan ;;
	*)
		error "unknown watch method $P_method"
		return 2
		;;
	esac
}

watch_poll() {
	reader=${P_reader:-0}
	poll=$(awk -v ms="${P_poll_ms:-100}" 'BEGIN { printf "%.3f", ms / 1000 }')
	last=
	changes=-1
	while [ $changes -lt "$want" ]; do
		if atr=$(atr_of "$reader") && [ -n "$atr" ]; then
			state=present
		else
			state=absent
			atr=
		fi
		if [ "$state" != "$last" ]; then
			if [ $state = present ]; then
				event card state=present atr=$atr uptime_ms=$(uptime_ms)
			else
				event card state=absent uptime_ms=$(uptime_ms)
			fi
			last=$state
			changes=$((changes + 1))
		fi
		sleep "$poll"
	done
	result changes $changes
}

watch_pcsc_scan() {
	mkfifo /tmp/scan
	pcsc_scan -n >/tmp/scan 2>&1 &
	scan=$!
	last=
	changes=-1
	while [ $changes -lt "$want" ] && IFS= read -r line; do
		case $line in
		*"Card removed"*) state=absent ;;
		*"Card inserted"*) state=present ;;
		*) continue ;;
		esac
		if [ "$state" != "$last" ]; then
			event card state=$state uptime_ms=$(uptime_ms)
			last=$state
			changes=$((changes + 1))
		fi
	done </tmp/scan
	kill $scan 2>/dev/null
	result changes $changes
	[ $changes -ge "$want" ]
}

# Scenario piv: the PKCS#11 view of a PIV card through OpenSC, a login and
# a signature by the key in slot 9A.
# Parameters: vscard.pin=PIN (123456), vscard.keyid=ID (01, OpenSC's id for
# the 9A key), vscard.challenge=HEX (32 bytes, defaults to a fixed one).
# Results: token_label (from pkcs11-tool -L), mechanisms (pkcs11-tool -M,
# space-separated), objects=N (key and certificate objects visible before
# login), certs=N and cert.I="ID LABEL" (the certificate objects),
# keytype=rsa|ec, mechanism, cert=HEX (the DER certificate with the key's
# id, when there is one), challenge=HEX, sign_rc, signature=HEX (RSA: the
# raw signature; ECDSA: r||s).
# The PIN is passed to pkcs11-tool, never printed.
scenario_piv() {
	mod=/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so
	pin=${P_pin:-123456}
	id=${P_keyid:-01}
	challenge=${P_challenge:-000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f}
	pkcs11-tool --module $mod -L >/tmp/piv.slots 2>&1 || {
		sed 's/^/VSCARD-ERROR pkcs11-tool -L: /' /tmp/piv.slots | head -n 20
		return 1
	}
	sed -n 's/^ *token label *: *//p' /tmp/piv.slots | while read -r l; do
		result token_label "$l"
	done
	pkcs11-tool --module $mod -M >/tmp/piv.mechs 2>&1
	result mechanisms "$(sed -n 's/^  \([A-Z0-9-]*\).*/\1/p' /tmp/piv.mechs | tr '\n' ' ')"
	pkcs11-tool --module $mod -O >/tmp/piv.objects 2>&1
	result objects "$(grep -c 'Object;' /tmp/piv.objects)"
	# Each certificate object's ID and label (pkcs11-tool prints its
	# "label:" line before its "ID:" line).
	awk '
		/^Certificate Object;/ { c = 1; label = ""; next }
		/^[^ ]/ { c = 0 }
		c && $1 == "label:" { sub(/^ *label: */, ""); label = $0 }
		c && $1 == "ID:" { print $2, label; c = 0 }
	' /tmp/piv.objects >/tmp/piv.certs
	n=0
	while read -r line; do
		result "cert.$n" "$line"
		n=$((n + 1))
	done </tmp/piv.certs
	result certs $n
	# The key type from the key object with our id: before login OpenSC
	# shows PIV private keys as private objects, so only the public key.
	keytype=$(awk -v id="$id" '
		/^(Private|Public) Key Object;/ { t = ($0 ~ /RSA/) ? "rsa" : ($0 ~ /EC/ ? "ec" : "other"); next }
		/^[^ ]/ { t = "" }
		t != "" && $1 == "ID:" && tolower($2) == tolower(id) { print t; exit }
	' /tmp/piv.objects)
	[ -n "$keytype" ] || {
		error "no key with id $id"
		sed 's/^/VSCARD-ERROR objects: /' /tmp/piv.objects | head -n 40
		return 1
	}
	result keytype "$keytype"
	case $keytype in
	rsa) mech=RSA-PKCS ;;
	ec) mech=ECDSA ;;
	*) error "unsupported key type"; return 1 ;;
	esac
	result mechanism $mech
	if pkcs11-tool --module $mod --read-object --type cert --id "$id" \
		--output-file /tmp/piv.cert >/dev/null 2>&1; then
		result cert "$(od -An -v -tx1 /tmp/piv.cert | hexstr)"
	fi
	# The challenge's bytes, written with printf's octal escapes (awk
	# cannot write NUL bytes).
	: >/tmp/piv.challenge
	rest=$challenge
	while [ -n "$rest" ]; do
		b=${rest%"${rest#??}"}
		rest=${rest#??}
		printf "\\$(printf %o 0x$b)" >>/tmp/piv.challenge
	done
	result challenge "$(od -An -v -tx1 /tmp/piv.challenge | hexstr)"
	pkcs11-tool --module $mod --login --pin "$pin" --sign --id "$id" -m $mech \
		--input-file /tmp/piv.challenge --output-file /tmp/piv.sig >/tmp/piv.sign 2>&1
	rc=$?
	result sign_rc $rc
	if [ $rc != 0 ]; then
		grep -v -i pin /tmp/piv.sign | sed 's/^/VSCARD-ERROR pkcs11-tool --sign: /' | head -n 20
		return $rc
	fi
	result signature "$(od -An -v -tx1 /tmp/piv.sig | hexstr)"
}

# ---- vscclient-go inside the guest ----

# CLIENT_PID is the pid of the client the client scenario started.
CLIENT_PID=

# client_alive succeeds while the client runs (an exited child that was not
# waited for is a zombie, which kill -0 does not tell apart).
client_alive() {
	[ -n "$CLIENT_PID" ] && [ -r /proc/$CLIENT_PID/stat ] || return 1
	cstate=$(awk '{ print $3 }' /proc/$CLIENT_PID/stat 2>/dev/null)
	[ -n "$cstate" ] && [ "$cstate" != Z ]
}

client_gone() { ! client_alive; }

# client_cpu prints the client's CPU time in clock ticks (utime + stime,
# USER_HZ = 100 a second) and its context switches (voluntary and not, all
# threads): "TICKS SWITCHES".
client_cpu() {
	ticks=$(awk '{ print $14 + $15 }' /proc/$CLIENT_PID/stat 2>/dev/null)
	switches=$(cat /proc/$CLIENT_PID/task/*/status 2>/dev/null |
		awk '/voluntary_ctxt_switches:/ { s += $2 } END { print s + 0 }')
	echo "${ticks:-0} ${switches:-0}"
}

# Scenario client: start vscclient-go (put into the image with
# BuildOptions.ExtraFiles at /usr/bin/vscclient-go) in the background, as
# the guest's own VSCard client of a host it reaches over the network
# (vscard.net=1). Its log goes to the console as VSCARD-LOG lines when the
# guest powers off.
# Parameters: vscard.connect=HOST:PORT (required, TCP), vscard.card=CARD
# (pcsc), vscard.client_log=LEVEL (debug).
# Events: "client pid=N uptime_ms=MS".
scenario_client() {
	[ -x /usr/bin/vscclient-go ] || {
		error "the image has no /usr/bin/vscclient-go (BuildOptions.ExtraFiles)"
		return 2
	}
	[ -n "$P_connect" ] || {
		error "vscard.connect is empty"
		return 2
	}
	vscclient-go --card "${P_card:-pcsc}" --connect "tcp://$P_connect" \
		--log-level "${P_client_log:-debug}" >/tmp/client.log 2>&1 &
	CLIENT_PID=$!
	client_alive || {
		error "vscclient-go exited at once"
		return 1
	}
	event client pid=$CLIENT_PID uptime_ms=$(uptime_ms)
}

# Scenario hotplug: report QEMU's reader leaving and joining the USB bus
# while the host unplugs and plugs usb-ccid (QMP device_del, device_add),
# and, when the client scenario started vscclient-go, the CPU it used while
# the reader was away. The host marks when the count starts by typing the
# line "idle" on the console (VM.SendLine) while the reader is away, once
# the client has done its part of the removal; the count ends when the
# reader is back.
# Parameters: vscard.changes=N (2): stop after N changes.
# Events: "usb state=absent|present change=I uptime_ms=MS";
# "idle-start uptime_ms=MS" when the count starts.
# Results: changes=N; for the Ith count: idle_ms.I (how long), idle_ticks.I
# (the client's CPU time in 10 ms clock ticks), idle_switches.I (its
# context switches); idle_measured=N.
# Fails when the client exits meanwhile, or the host marks "idle" while the
# reader is there.
scenario_hotplug() {
	want=${P_changes:-2}
	stty -F /dev/console -echo 2>/dev/null
	exec 3</dev/console
	if reader_on_bus; then last=present; else last=absent; fi
	changes=0
	measured=0
	since=
	rc=0
	while [ $changes -lt "$want" ]; do
		if reader_on_bus; then state=present; else state=absent; fi
		now=$(now_us)
		if [ $state != $last ]; then
			event usb state=$state change=$changes uptime_ms=$((now / 1000))
			changes=$((changes + 1))
			last=$state
			if [ $state = present ] && [ -n "$since" ]; then
				set -- $(client_cpu)
				result "idle_ms.$measured" $(((now - since) / 1000))
				result "idle_ticks.$measured" $(($1 - since_ticks))
				result "idle_switches.$measured" $(($2 - since_switches))
				measured=$((measured + 1))
				since=
			fi
		fi
		if [ -n "$CLIENT_PID" ] && ! client_alive; then
			error "vscclient-go exited while the reader came and went"
			rc=1
			break
		fi
		# Wait 50 ms for a line from the host, which is the poll interval
		# when none comes.
		if IFS= read -r -t 0.05 line <&3 && [ "$line" = idle ]; then
			if [ $last != absent ]; then
				error "the host marked idle while the reader is on the bus"
				rc=1
				break
			fi
			set -- $(client_cpu)
			since=$(now_us) since_ticks=$1 since_switches=$2
			event idle-start uptime_ms=$((since / 1000))
		fi
	done
	exec 3<&-
	result changes $changes
	result idle_measured $measured
	return $rc
}

# Scenario wait_host: wait until the host types a line on the console
# (VM.SendLine), so that the host can finish its part before the next
# scenario runs.
# Events: "waiting uptime_ms=MS". Results: host_line=LINE.
scenario_wait_host() {
	stty -F /dev/console -echo 2>/dev/null
	event waiting uptime_ms=$(uptime_ms)
	IFS= read -r line </dev/console || {
		error "the console's input ended"
		return 1
	}
	result host_line "$line"
}

# Scenario client_stop: stop vscclient-go with SIGTERM (it removes its card
# and reader from the host first) and report how it ended.
# Results: client_rc=N, its exit status.
# Fails when it had exited before, or does not exit within 10 s.
scenario_client_stop() {
	client_alive || {
		error "vscclient-go is not running"
		return 1
	}
	kill -TERM $CLIENT_PID
	retry 500 0.02 client_gone || {
		error "vscclient-go still runs 10s after SIGTERM"
		return 1
	}
	wait $CLIENT_PID
	rc=$?
	result client_rc $rc
	[ $rc = 0 ]
}

# Scenario shell: an interactive shell on the console, for debugging by hand
# (qemu ... -serial stdio).
scenario_shell() {
	setsid cttyhack sh </dev/console >/dev/console 2>&1
}

# Scenario none: just boot, list nothing.
scenario_none() { :; }

# Scenario idle: stay up, reader and pcscd running, until the VM is
# stopped from outside or vscard.timeout ends it (a later scenario never
# runs). For tests of what happens to one VM while another restarts.
scenario_idle() {
	event idle uptime_ms=$(uptime_ms)
	while :; do sleep 3600; done
}

# ---- main: check the scenarios, start the watchdog, wait for the reader,
# start pcscd, run the scenarios, power off ----

event init uptime_ms=$(uptime_ms)

scenarios=$(echo "$P_scenario" | tr ',' ' ')
for s in $scenarios; do
	if ! type "scenario_$s" >/dev/null 2>&1; then
		echo "VSCARD-BEGIN $s"
		error "unknown scenario $s"
		echo "VSCARD-END $s rc=2"
		finish
	fi
done

# The watchdog powers the VM off if a scenario hangs.
(
	sleep "$P_timeout"
	error "timeout after ${P_timeout}s"
	echo "VSCARD-END watchdog rc=124"
	finish
) &

for m in usb-common usbcore uhci-hcd; do
	if ! insmod "/lib/modules/$m.ko"; then
		fail_boot "insmod $m failed"
	fi
done

if [ "$P_net" = 1 ]; then
	start_net || fail_boot "no network"
fi
if [ "$P_udev" = 1 ]; then
	start_udev || fail_boot "no udevd"
fi

# Without udevd (vscard.udev=1), pcscd only sees the readers present when it
# starts.
retry 500 0.02 reader_on_bus ||
	fail_boot "no USB device 08e6:4433 after 10s (is usb-ccid on the QEMU command line?)"
event usb-reader uptime_ms=$(uptime_ms)

if [ "$P_debug" = 1 ]; then
	pcscd --foreground --debug >/tmp/pcscd.log 2>&1 &
else
	pcscd --foreground >/tmp/pcscd.log 2>&1 &
fi

retry 200 0.05 have_readers || fail_boot "pcscd lists no reader after 10s"
event reader uptime_ms=$(uptime_ms)

for s in $scenarios; do
	echo "VSCARD-BEGIN $s"
	"scenario_$s"
	rc=$?
	echo "VSCARD-END $s rc=$rc"
	[ $rc = 0 ] || break
done
finish
