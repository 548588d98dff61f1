# Loaded by every .bats file: the tools on PATH, a fresh directory per test, helpers.
bats_require_minimum_version 1.5.0

KD_BIN=${KD_BIN:-$(cd "$BATS_TEST_DIRNAME/.." && pwd)/build/bin}
PATH="$KD_BIN:$PATH"
FIXTURES="$BATS_TEST_DIRNAME/fixtures"
SHARED_DATA=${KD_SHARED_DATA:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)/shared/data}
export LC_ALL=C
cd "$BATS_TEST_TMPDIR" || exit 1

# flip_byte FILE OFFSET: xor one byte with 0x01
flip_byte() {
    local f=$1 off=$2 b
    b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
    printf "$(printf '\\%03o' $(( b ^ 1 )))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}

# put_u32 FILE OFFSET VALUE: overwrite a little-endian u32
put_u32() {
    local f=$1 off=$2 v=$3
    printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $((v & 255)) $((v >> 8 & 255)) $((v >> 16 & 255)) $((v >> 24 & 255)))" |
        dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}

# a small dataset, made once per test
small_dataset() {
    kd-gen synth --users 60 --items 40 --mean 8 --rank 4 --seed "${1:-1}" -o "${2:-small.kd}"
}

# content_id FILE: the content ID kd-info prints
content_id() {
    kd-info --json "$1" | sed 's/.*"content_id":"\([0-9a-f]*\)".*/\1/'
}

# no_temporaries DIR: no .kdtmp files left
no_temporaries() {
    [ -z "$(find "${1:-.}" -name '.*.kdtmp.*' -print -quit)" ]
}

# one_line: $stderr is exactly one line
one_line() {
    [ -n "$stderr" ] && [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
}

# cmp_section A B SECTION: cmp of A's and B's SECTION as kd-cat prints it: 0 the same, 1 they
# differ, 2 a dump failed.  (`cmp <(kd-cat A S) <(kd-cat B S)` ignores kd-cat's status, so two
# failing dumps compare equal.)  To assert a difference: run cmp_section ...; [ "$status" -eq 1 ]
cmp_section() {
    kd-cat "$1" "$3" >.section.a || return 2
    kd-cat "$2" "$3" >.section.b || return 2
    cmp -s .section.a .section.b
}
