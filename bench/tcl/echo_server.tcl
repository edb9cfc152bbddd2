# SPDX-License-Identifier: MIT
# bench/tcl/echo_server.tcl - the Tcl side of the echo benchmark (issue 13
# item 4): a fileevent-driven echo server, as an ordinary Tcl program would
# write one.  Every accepted socket is non-blocking, unbuffered and binary;
# its readable handler reads what is there and writes it back, and closes
# the socket at end of file (or on an error such as a reset).
#
#   tclsh8.6 echo_server.tcl ?port?     (default 0: the kernel picks one)
#
# Prints the port it listens on (127.0.0.1) on stdout, then serves until
# killed.  Run it under a raised descriptor limit (ulimit -n) to serve more
# than ~1,000 connections; bench/tcl/run.sh does.

proc accept {chan addr port} {
    fconfigure $chan -blocking 0 -buffering none -translation binary
    fileevent $chan readable [list echo $chan]
}

proc echo {chan} {
    if {[catch {read $chan} data]} {
        catch {close $chan}
        return
    }
    if {[string length $data]} {
        if {[catch {puts -nonewline $chan $data}]} {
            catch {close $chan}
            return
        }
    }
    if {[eof $chan]} {
        catch {close $chan}
    }
}

set port [expr {$argc > 0 ? [lindex $argv 0] : 0}]
set listener [socket -server accept -myaddr 127.0.0.1 $port]
puts [lindex [fconfigure $listener -sockname] 2]
flush stdout
vwait forever
