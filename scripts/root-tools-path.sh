# shellcheck shell=sh
# Sourced (POSIX sh) by the scripts and npm scripts that run root's tools (nginx, rsyslogd,
# debootstrap, nft, ip …): those live in the sbin directories, which Debian leaves off a user's
# PATH, and `sudo env "PATH=$PATH"` (the pull-request workflow) or `su` without `-` carry that PATH
# over to root. Adds each one PATH lacks, after what is there (the caller's node and npm first).
for dir in /usr/local/sbin /usr/sbin /sbin; do
  case ":$PATH:" in
    *":$dir:"*) ;;
    *) PATH="$PATH:$dir" ;;
  esac
done
unset dir
export PATH
