# SPDX-License-Identifier: MIT
#
# tests/tcl/smoke.tcl - a quick check of evqtclsh's event loop (evq as
# Tcl 8.6's notifier), printing TAP: timers, fileevents on pipes, sockets
# and regular files, a fileevent above descriptor 1024 (where stock
# tclsh8.6 aborts: "bit out of range 0 - FD_SETSIZE"), threads.  make
# check runs it with evqtclsh on every evq backend when tcl8.6-dev is
# installed (make check-tcl-smoke).  Every wait has a generous deadline;
# nothing depends on a sleep being long enough.  With stock tclsh8.6 it
# runs too, skipping what needs evq.

set evq [expr {![catch {evq::backend} backend]}]
set n 0
proc ok {cond name} {
    incr ::n
    puts [format "%s %d - %s" [expr {$cond ? "ok" : "not ok"}] $::n $name]
    flush stdout
}
proc skip {name why} {
    incr ::n
    puts "ok $::n - $name # SKIP $why"
    flush stdout
}
# Waits for the global variable var to be set, at most 10 s; returns its
# value or TIMEOUT.
proc waitfor {var} {
    set id [after 10000 [list set ::$var TIMEOUT]]
    vwait ::$var
    after cancel $id
    return [set ::$var]
}

if {$evq} {
    ok [expr {![info exists env(EVQ_BACKEND)] || $backend eq $env(EVQ_BACKEND)}] \
	"the notifier is evq's (backend $backend)"
} else {
    skip "the notifier is evq's" "not evqtclsh"
}

# Timers: after + vwait, in order, never early.
set t0 [clock milliseconds]
after 100 {set ::timer fired}
ok [expr {[waitfor timer] eq "fired" && [clock milliseconds] - $t0 >= 99}] \
    "after 100 + vwait fires, not early"
set order {}
after 30 {lappend ::order b}
after 10 {lappend ::order a}
after 60 {set ::ordered 1}
waitfor ordered
ok [expr {$order eq {a b}}] "timers fire in deadline order ($order)"
after idle {set ::idle 1}
ok [expr {[waitfor idle] == 1}] "after idle runs"

# A readable fileevent on a pipe, then its eof.
lassign [chan pipe] r w
fconfigure $r -blocking 0
fconfigure $w -buffering line
proc rd {r} {
    if {[gets $r line] >= 0} {
	set ::line $line
    } elseif {[eof $r]} {
	set ::line EOF
	close $r
    }
}
fileevent $r readable [list rd $r]
after 20 [list puts $w hello]
ok [expr {[waitfor line] eq "hello"}] "fileevent readable on a pipe"
close $w
ok [expr {[waitfor line] eq "EOF"}] "a pipe's hang-up reads as readable (eof)"

# A writable fileevent fires on an empty pipe, and only while wanted.
lassign [chan pipe] r w
fileevent $w writable {set ::wr 1}
ok [expr {[waitfor wr] == 1}] "fileevent writable on a pipe"
fileevent $w writable {}
set ::wr 0
after 50 {set ::quiet 1}
waitfor quiet
ok [expr {$::wr == 0}] "a removed fileevent stays quiet"
close $r
close $w

# A regular file is always ready.
set path [file join [expr {[info exists env(TMPDIR)] ? $env(TMPDIR) : "/tmp"}] \
	      evq-tcl-smoke-[pid]]
set f [open $path w]
puts $f "line one"
close $f
set f [open $path r]
fileevent $f readable {set ::file [gets $::f]}
ok [expr {[waitfor file] eq "line one"}] "fileevent readable on a regular file"
close $f
file delete $path

# A socket server and client on localhost: a line each way, then eof.
proc accept {s addr port} {
    fconfigure $s -buffering line -blocking 0
    fileevent $s readable [list echo $s]
}
proc echo {s} {
    if {[gets $s line] >= 0} {
	puts $s "echo $line"
    } elseif {[eof $s]} {
	close $s
	set ::srvclosed 1
    }
}
set srv [socket -server accept -myaddr 127.0.0.1 0]
set port [lindex [fconfigure $srv -sockname] 2]
set c [socket -async 127.0.0.1 $port]
fileevent $c writable {set ::connected 1}
ok [expr {[waitfor connected] == 1}] "an async connect completes (writable)"
fileevent $c writable {}
fconfigure $c -buffering line -blocking 0
fileevent $c readable {if {[gets $::c l] >= 0} {set ::reply $l}}
puts $c ping
ok [expr {[waitfor reply] eq "echo ping"}] "socket server echoes to a client"
close $c
ok [expr {[waitfor srvclosed] == 1}] "the server sees the client's close"
close $srv

# A fileevent above descriptor 1024.
if {!$evq} {
    skip "fileevent on a descriptor above 1024" \
	"stock tclsh aborts there (bit out of range 0 - FD_SETSIZE)"
} else {
    set fill {}
    set err ""
    for {set i 0} {$i < 1100} {incr i} {
	if {[catch {open /dev/null r} ch]} {
	    set err $ch
	    break
	}
	lappend fill $ch
    }
    if {$err ne ""} {
	skip "fileevent on a descriptor above 1024" "open: $err (ulimit -n)"
    } else {
	lassign [chan pipe] r w
	set fd [string range $r 4 end]
	fconfigure $r -blocking 0
	fconfigure $w -buffering line
	fileevent $r readable {if {[gets $::r l] >= 0} {set ::high $l}}
	after 20 [list puts $w far]
	ok [expr {$fd > 1024 && [waitfor high] eq "far"}] \
	    "fileevent readable on descriptor $fd"
	close $r
	close $w
    }
    foreach ch $fill {
	close $ch
    }
}

# Threads: thread::send, and an event loop in the other thread.
if {[catch {package require Thread}]} {
    skip "thread::send" "no Thread package (install tcl-thread)"
    skip "thread::send -async + vwait" "no Thread package"
} else {
    set t [thread::create]
    ok [expr {[thread::send $t {expr {6 * 7}}] == 42}] "thread::send"
    thread::send -async $t {
	after 50 {set ::d ok}
	vwait ::d
	set ::d
    } ::async
    ok [expr {[waitfor async] eq "ok"}] "thread::send -async to a thread in vwait"
    thread::release $t
}

puts "1..$n"
