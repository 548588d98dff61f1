#!/bin/sh
# Check what kdrec needs to build and test; install missing Debian packages when root,
# otherwise print the exact command.  Silent and fast (a few ms) when all is present.
CC=${CC:-cc}
missing=""
has_header() { printf '#include <%s>\n' "$1" | $CC -E -x c - >/dev/null 2>&1; }
has_header zlib.h      || missing="$missing zlib1g-dev"
has_header xxhash.h    || missing="$missing libxxhash-dev"
has_header curl/curl.h || missing="$missing libcurl4-openssl-dev"
command -v bats >/dev/null 2>&1    || missing="$missing bats"
command -v xmllint >/dev/null 2>&1 || missing="$missing libxml2-utils"
command -v valgrind >/dev/null 2>&1 || missing="$missing valgrind"
# for the Slurm and remote-cache tests only (they skip, saying why, without them): installed
# when root, never required.  nginx-light has the WebDAV PUT module (--with-http_dav_module).
if [ "$(id -u)" = 0 ]; then
  command -v slurmctld >/dev/null 2>&1 || missing="$missing slurm-wlm"
  command -v munged >/dev/null 2>&1    || missing="$missing munge"
  command -v nginx >/dev/null 2>&1     || missing="$missing nginx-light"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "kdrec: installing missing Debian packages:$missing" >&2
  # update the package lists only when the install cannot find a package
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null 2>&1 || {
    apt-get update -q >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >&2
  } || { echo "kdrec: could not install:$missing" >&2; exit 1; }
  exit 0
fi
echo "kdrec: missing packages:$missing" >&2
echo "kdrec: run: sudo apt-get update && sudo apt-get install -y$missing" >&2
exit 1
