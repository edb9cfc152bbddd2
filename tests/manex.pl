#!/usr/bin/perl
# SPDX-License-Identifier: MIT
#
# manex.pl - the documentation's code is compiled and run (TAP).
#
#  1. Every man page in man/man3 and man/man7 with an EXAMPLES (or EXAMPLE)
#     section: the code of its .EX/.EE and .nf/.fi blocks, concatenated in
#     order, is written to $BUILD/manex/PAGE.c (roff escapes undone, with
#     #line directives pointing back at the page) and compiled with
#     -Wall -Wextra -Werror against include/ and libevq.a.
#     Convention: an example that defines main() is a whole program; it is
#     linked and run, and must exit 0 within 20 s with standard input at end
#     of file and nothing outside the machine (localhost at most).  An
#     example without main() is compiled as a translation unit (-c), so it
#     must still be valid C at file scope.  A section without such blocks
#     (prose only, e.g. "see evq_wait(3)") is not counted.
#     Inside a block, a line starting with "." is a request: comments (.\")
#     are dropped, .br and .sp give an empty line, anything else is refused.
#  2. README.md: every ```c block is compiled and run the same way, and the
#     first one must be examples/readme.c without its leading comment lines.
#  3. Every program built from examples/*.c runs with no arguments and must
#     exit 0 within 20 s (each one's no-argument mode is a short self-test).
#
# Run from the top of the source tree by make check, which sets
#   MANEX_BUILD    the build directory (libevq.a, examples/, manex/ output)
#   MANEX_CC       the compiler
#   MANEX_CFLAGS   extra flags for compiling and linking (sanitizers, ...)
#   MANEX_BACKENDS the backends to run each program on (EVQ_BACKEND=...),
#                  separated by spaces; empty: once, as the environment says
# A program's output goes to $BUILD/manex/NAME.out, shown only on failure.
use strict;
use warnings;
use POSIX ();

my $build  = $ENV{MANEX_BUILD} // 'build';
my $cc     = $ENV{MANEX_CC} // 'cc';
my $extra  = $ENV{MANEX_CFLAGS} // '';
my $out    = "$build/manex";
my $lib    = "$build/libevq.a";
my $limit  = 20;    # seconds a program may run
my @backends = split(' ', $ENV{MANEX_BACKENDS} // '');

my $n = 0;
my $failed = 0;

sub ok {
	my ($pass, $name, @diag) = @_;
	$n++;
	print(($pass ? "ok" : "not ok"), " $n - $name\n");
	unless ($pass) {
		$failed++;
		print STDERR map { "# $_\n" } map { split /\n/ } @diag;
	}
}

sub slurp {
	my ($f) = @_;
	open(my $fh, '<', $f) or return undef;
	local $/;
	my $s = <$fh>;
	close $fh;
	return $s;
}

sub spew {
	my ($f, $s) = @_;
	open(my $fh, '>', $f) or die "manex: $f: $!\n";
	print $fh $s;
	close $fh or die "manex: $f: $!\n";
}

# Runs a command (a list, no shell) with stdin from /dev/null and stdout and
# stderr to $log, killed after $limit seconds.  Returns a description of
# the outcome: "" for exit 0.
sub run {
	my ($log, @cmd) = @_;
	my $pid = fork();
	die "manex: fork: $!\n" unless defined $pid;
	if ($pid == 0) {
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>', $log);
		open(STDERR, '>&', \*STDOUT);
		setpgrp(0, 0);    # its own group, so a timeout kills it all
		exec { $cmd[0] } @cmd or POSIX::_exit(127);
	}
	my $timedout = 0;
	local $SIG{ALRM} = sub { $timedout = 1; kill('KILL', -$pid); kill('KILL', $pid); };
	alarm($limit);
	my $r;
	do { $r = waitpid($pid, 0) } while ($r == -1 && $!{EINTR});
	alarm(0);
	my $st = $?;
	return "killed after ${limit} s" if $timedout;
	return "" if $st == 0;
	return "exit " . ($st >> 8) if ($st & 127) == 0;
	return "signal " . ($st & 127);
}

# Compiles $src into $bin (whole program) or an object (fragment).
sub compile {
	my ($src, $bin, $whole) = @_;
	my @cmd = (split(' ', $cc), '-Wall', '-Wextra', '-Werror', '-O2', '-g', '-Iinclude',
		   '-pthread', split(' ', $extra));
	if ($whole) {
		push @cmd, '-o', $bin, $src, $lib, '-lrt';
	} else {
		push @cmd, '-c', '-o', "$bin.o", $src;
	}
	my $log = "$bin.cc";
	my $why = run($log, @cmd);
	return ($why eq '', (slurp($log) // '') . ($why ? "compiler: $why" : ''));
}

# Undoes the roff escapes a code block may use; dies on an unknown one.
my %named = (aq => "'", dq => '"', rs => '\\', ti => '~', ha => '^', ga => '`',
	     lq => '"', rq => '"', oq => "'", cq => "'", at => '@', sl => '/',
	     hy => '-', mi => '-', em => '--', en => '-', lh => '', rh => '',
	     bu => '*', co => '(c)');
sub unroff {
	my ($line, $where) = @_;
	$line =~ s{\\(\((..)|\*\((..)|\*(.)|f\((..)|f\[[^\]]*\]|f.|[e\\\-&|^ 0.'`%]|.)}{
		my ($all, $n2, $s2, $s1) = ($1, $2, $3, $4);
		if (defined $n2) {
			die "$where: unknown roff character \\($n2\n" unless exists $named{$n2};
			$named{$n2};
		} elsif (defined $s2 || defined $s1) {
			my $s = $s2 // $s1;
			die "$where: unknown roff string \\*$all\n" unless exists $named{$s};
			$named{$s};
		} elsif ($all =~ /^f/) {
			'';     # font changes
		} elsif ($all eq 'e' || $all eq '\\') {
			'\\';
		} elsif ($all eq '-') {
			'-';
		} elsif ($all eq ' ' || $all eq '0') {
			' ';
		} elsif ($all eq '.' || $all eq "'" || $all eq '`') {
			$all;
		} elsif ($all =~ /^[&|^%]$/) {
			'';
		} else {
			die "$where: unsupported roff escape \\$all\n";
		}
	}ge;
	return $line;
}

# The code of a page's EXAMPLES section: (C text, number of blocks).
sub extract_man {
	my ($page, $text) = @_;
	my @lines = split /\n/, $text, -1;
	my ($in_sec, $in_code, $code, $blocks) = (0, 0, '', 0);
	for my $i (0 .. $#lines) {
		my $l = $lines[$i];
		my $where = "$page:" . ($i + 1);
		if ($l =~ /^\.SH\s/) {
			$in_sec = $l =~ /^\.SH\s+"?EXAMPLES?"?\s*$/;
			$in_code = 0;
			next;
		}
		next unless $in_sec;
		if (!$in_code) {
			if ($l =~ /^\.(EX|nf)\s*$/) {
				$in_code = $1 eq 'EX' ? 'EE' : 'fi';
				$blocks++;
				$code .= sprintf("#line %d \"%s\"\n", $i + 2, $page);
			}
			next;
		}
		if ($l =~ /^\.$in_code\s*$/) {
			$in_code = 0;
			next;
		}
		if ($l =~ /^\.\\"/) {
			$code .= "\n";
		} elsif ($l =~ /^\.(br|sp)\b/) {
			$code .= "\n";
		} elsif ($l =~ /^[.']/) {
			die "$where: roff request inside an example: $l\n";
		} else {
			$code .= unroff($l, $where) . "\n";
		}
	}
	die "$page: unterminated code block in EXAMPLES\n" if $in_code;
	return ($code, $blocks);
}

sub has_main {
	my ($code) = @_;
	(my $c = $code) =~ s{/\*.*?\*/}{ }gs;
	return $c =~ /\bmain\s*\(/;
}

# Compiles (and runs, if whole) one piece of documentation code.
sub check_code {
	my ($label, $name, $code) = @_;
	my $src = "$out/$name.c";
	my $bin = "$out/$name";
	spew($src, $code);
	my $whole = has_main($code);
	my ($okc, $log) = compile($src, $bin, $whole);
	ok($okc, "$label compiles" . ($whole ? "" : " (fragment, -c)"),
	   "$cc ... $src", $log);
	return unless $whole;
	if (!$okc) {
		ok(0, "$label runs, exit 0", "not compiled");
		return;
	}
	run_each($label, $bin, "$bin.out");
}

# Runs a program once per backend (one test each).
sub run_each {
	my ($label, $bin, $log) = @_;
	for my $b (@backends ? @backends : ('')) {
		local $ENV{EVQ_BACKEND} = $b if $b ne '';
		my $why = run($log, $bin);
		ok($why eq '', "$label runs, exit 0" . ($b ne '' ? " ($b)" : ''),
		   "EVQ_BACKEND=$b $bin: $why", slurp($log) // '');
	}
}

print "TAP version 13\n";
die "manex: run from the top of the source tree\n" unless -f 'include/evq.h';
die "manex: $lib not built\n" unless -f $lib;
mkdir $build;
mkdir $out;

# 1. Man pages.
my @pages = sort(glob('man/man3/*.3'), glob('man/man7/*.7'));
for my $page (@pages) {
	my $text = slurp($page) // die "manex: $page: $!\n";
	next if $text =~ /^\.so\s/;
	my ($code, $blocks);
	eval { ($code, $blocks) = extract_man($page, $text); 1 } or do {
		ok(0, "$page EXAMPLES extracted", $@);
		next;
	};
	next unless $blocks;
	my ($base, $sec) = $page =~ m{([^/]+)\.(\d)$};
	check_code("$base($sec) EXAMPLES", "$base.$sec", $code);
}

# 2. README.md's C blocks.
my $readme = slurp('README.md') // die "manex: README.md: $!\n";
my @blocks;
{
	my @lines = split /\n/, $readme, -1;
	my ($in, $code) = (0, '');
	for my $i (0 .. $#lines) {
		my $l = $lines[$i];
		if (!$in && $l =~ /^```c\s*$/) {
			($in, $code) = (1, sprintf("#line %d \"README.md\"\n", $i + 2));
		} elsif ($in && $l =~ /^```\s*$/) {
			push @blocks, $code;
			$in = 0;
		} elsif ($in) {
			$code .= "$l\n";
		}
	}
}
for my $i (0 .. $#blocks) {
	check_code("README.md C block " . ($i + 1), "README." . ($i + 1), $blocks[$i]);
}
if (@blocks) {
	my $file = slurp('examples/readme.c') // '';
	# readme.c = leading comment lines (SPDX, a title) + the README's block
	$file =~ s{\A(?:[ \t]*/\*.*?\*/[ \t]*\n)+}{}s;
	(my $block = $blocks[0]) =~ s/\A#line[^\n]*\n//;
	ok($file eq $block, "README.md's first C block is examples/readme.c",
	   "they differ: edit both (the README shows readme.c without its leading comments)");
}

# 3. The example programs.
for my $src (sort glob('examples/*.c')) {
	my ($name) = $src =~ m{([^/]+)\.c$};
	my $bin = "$build/examples/$name";
	if (!-x $bin) {
		ok(0, "examples/$name runs, exit 0", "$bin not built");
		next;
	}
	run_each("examples/$name", $bin, "$out/example.$name.out");
}

print "1..$n\n";
exit($failed ? 1 : 0);
