#!/usr/bin/env bats
# The README's "study by hand" shell block runs as written and prints what it promises.
load test_helper

@test "the README's composition by hand runs" {
    awk '/^## The study by hand/ { on = 1 } on && /^```sh$/ { inblock = 1; next } inblock && /^```$/ { exit } inblock' \
        "$BATS_TEST_DIRNAME/../README.md" >study.sh
    [ "$(wc -l <study.sh)" -ge 5 ]
    run --separate-stderr -0 bash -eo pipefail study.sh
    [[ ${lines[0]} == model* ]]
    [ "${#lines[@]}" -eq 5 ]
    [[ ${lines[4]} == *"test items per user" ]]
    [ -s teacher.kd ] && [ -s rrd.kd ]
}
