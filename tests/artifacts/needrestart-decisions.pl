#!/usr/bin/perl
# What needrestart 3.11 (Debian 13) does with each named service once it has read a conf.d file:
# the file is evaluated as needrestart's own config evaluates it, on top of needrestart's built-in
# restart mode and a few of the exceptions Debian's needrestart.conf sets; then each service is
# "restarted" or "deferred" by needrestart's rule: the first override_rc key, in sorted order, that
# matches the unit decides. Prints "restart=<mode>", then one line per service.
# Usage: needrestart-decisions.pl CONF UNIT...
use strict;
use warnings;

our %nrconf = (
    restart => 'i',
    override_rc => {
        qr(^dbus) => 0,
        qr(^getty@.+\.service) => 0,
        qr(^systemd-logind) => 0,
        qr(^unattended-upgrades\.service$) => 0,
    },
);

my ($file, @units) = @ARGV;
eval do { local(@ARGV, $/) = $file; <> };
die "Error parsing $file: $@" if $@;

print "restart=$nrconf{restart}\n";
my @keys = sort keys %{$nrconf{override_rc}};
for my $unit (@units) {
    my $restart = 1;
    foreach my $re (@keys) {
        next unless $unit =~ /$re/;
        $restart = $nrconf{override_rc}->{$re};
        last;
    }
    print "$unit ", ($restart ? "restarted" : "deferred"), "\n";
}
