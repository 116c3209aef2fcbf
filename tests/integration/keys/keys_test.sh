#!/usr/bin/env bash
# Drives `gpunet keys` like a user: add, list, show, export, delete, import,
# and the failure paths (wrong passphrase, corrupt file, bad input). Each
# check prints what it expected when it fails.
set -u
GPUNET="$1"
# shellcheck source=../../util/devnet.sh
source "$(dirname "$0")/../../util/devnet.sh"
devnet_workdir gpunet-keys-test
HOME_DIR="$WORK"
export GPUNET_PASSPHRASE='correct horse battery staple'
unset GPUNET_HOME

g() { "$GPUNET" --home "$HOME_DIR" "$@"; }
# Runs a command that must fail with exit 1 (not a signal, not 0), stderr kept.
expect_exit1() {
  local what="$1"; shift
  "$@" >"$HOME_DIR/out" 2>"$HOME_DIR/err" </dev/null
  local rc=$?
  if [ "$rc" -ne 1 ]; then fail "$what: exit $rc, expected 1"; cat "$HOME_DIR/err" >&2; fi
  if ! grep -q '^error: ' "$HOME_DIR/err" && ! grep -q '"error"' "$HOME_DIR/out"; then
    fail "$what: no 'error:' message"; fi
}

# --- add (json) ---
add_json="$(g -o json keys add alice)" || fail "keys add alice"
echo "$add_json" | $PY -c 'import json,sys; json.load(sys.stdin)' || fail "add json does not parse"
addr="$(echo "$add_json" | json_field '["address"]')"
words="$(echo "$add_json" | json_field '["mnemonic"]')"
[[ "$addr" == gpn1* ]] || fail "address '$addr' does not start with gpn1"
[ "$(echo "$words" | wc -w)" -eq 24 ] || fail "mnemonic has $(echo "$words" | wc -w) words"

# --- file and directory modes ---
[ "$(stat -c %a "$HOME_DIR/keys/alice.json")" = 600 ] || fail "key file mode $(stat -c %a "$HOME_DIR/keys/alice.json")"
[ "$(stat -c %a "$HOME_DIR/keys")" = 700 ] || fail "keys dir mode $(stat -c %a "$HOME_DIR/keys")"
grep -q "$(echo "$words" | cut -d' ' -f1-3)" "$HOME_DIR/keys/alice.json" && fail "mnemonic in clear in the file"

# --- add (text) shows the words and the address ---
text_add="$(g keys add bob)" || fail "keys add bob"
echo "$text_add" | grep -q 'Created key "bob"' || fail "text add: no 'Created key'"
echo "$text_add" | grep -q ' 24\. ' || fail "text add: words not numbered to 24"

# --- duplicate ---
expect_exit1 "duplicate add" g keys add alice
grep -q 'already exists' "$HOME_DIR/err" || fail "duplicate: message"

# --- list / show ---
list_json="$(g -o json keys list)" || fail "keys list"
echo "$list_json" | $PY -c 'import json,sys; d=json.load(sys.stdin); assert [k["name"] for k in d["keys"]]==["alice","bob"], d' \
  || fail "list json names"
g keys list | grep -q "^alice  *$addr" || fail "text list lacks alice's address"
[ "$(g -o json keys show alice | json_field '["address"]')" = "$addr" ] || fail "show address"
g keys show alice | grep -q "address: *$addr" || fail "text show"

# --- export ---
exported="$(g keys export alice 2>/dev/null)" || fail "export"
[ "$exported" = "$words" ] || fail "exported words differ from the ones add printed"
seed="$(g -o json keys export alice --seed | json_field '["seed_hex"]')" || fail "export --seed"
[ "${#seed}" -eq 64 ] || fail "seed hex length ${#seed}"

# --- wrong passphrase: clean error, exit 1, no core ---
GPUNET_PASSPHRASE=wrong expect_exit1 "wrong passphrase" g keys export alice
grep -q 'wrong passphrase (or the key file was modified)' "$HOME_DIR/err" || fail "wrong passphrase message: $(cat "$HOME_DIR/err")"
GPUNET_PASSPHRASE=wrong expect_exit1 "wrong passphrase json" g -o json keys export alice
$PY -c 'import json,sys; d=json.load(sys.stdin); assert d["error"]["code"]=="wrong_passphrase", d' <"$HOME_DIR/out" \
  || fail "json error object"

# --- no passphrase source: says how to provide one ---
env -u GPUNET_PASSPHRASE setsid -w "$GPUNET" --home "$HOME_DIR" keys export alice >"$HOME_DIR/out" 2>"$HOME_DIR/err" </dev/null
rc=$?
[ $rc -eq 1 ] || fail "no passphrase: exit $rc"
grep -q 'GPUNET_PASSPHRASE' "$HOME_DIR/err" || fail "no passphrase: message does not say how: $(cat "$HOME_DIR/err")"

# --- delete, then import from the mnemonic gives the same address ---
expect_exit1 "delete without --yes and no terminal" setsid -w "$GPUNET" --home "$HOME_DIR" keys delete alice
[ -f "$HOME_DIR/keys/alice.json" ] || fail "delete without confirmation removed the file"
g keys delete alice --yes >/dev/null || fail "delete --yes"
[ -f "$HOME_DIR/keys/alice.json" ] && fail "file still there after delete"
expect_exit1 "show deleted" g keys show alice
imp="$(echo "$words" | g -o json keys import alice2)" || fail "import from stdin"
[ "$(echo "$imp" | json_field '["address"]')" = "$addr" ] || fail "import gives a different address"
imp_seed="$(g -o json keys import alice3 --seed-hex "$seed" | json_field '["address"]')" || fail "import --seed-hex"
[ "$imp_seed" = "$addr" ] || fail "seed import gives a different address"
rec="$(echo "$words" | g -o json keys add alice4 --recover | json_field '["address"]')" || fail "add --recover"
[ "$rec" = "$addr" ] || fail "add --recover gives a different address"

# --- bad mnemonics and names ---
echo "$words" | sed 's/ [a-z]*$/ zzzz/' >"$HOME_DIR/badwords"
expect_exit1 "unknown word" bash -c "'$GPUNET' --home '$HOME_DIR' keys import x <'$HOME_DIR/badwords'"
grep -q 'not in the BIP-39 English word list' "$HOME_DIR/err" || fail "unknown word message"
echo "$words" | cut -d' ' -f1-23 >"$HOME_DIR/shortwords"
expect_exit1 "23 words" bash -c "'$GPUNET' --home '$HOME_DIR' keys import x <'$HOME_DIR/shortwords'"
expect_exit1 "bad name" g keys add 'Bad/Name'
expect_exit1 "bad seed hex" g keys import x --seed-hex 1234
[ -f "$HOME_DIR/keys/x.json" ] && fail "a rejected import wrote a file"

# --- corrupt and truncated files: clean errors naming the file ---
head -c 100 "$HOME_DIR/keys/bob.json" >"$HOME_DIR/trunc" && cat "$HOME_DIR/trunc" >"$HOME_DIR/keys/bob.json"
expect_exit1 "truncated file" g keys export bob
grep -q 'bob.json is corrupt' "$HOME_DIR/err" || fail "truncated: message lacks path: $(cat "$HOME_DIR/err")"
g keys list >"$HOME_DIR/out" 2>&1 || fail "list with a corrupt file should still succeed"
grep -q 'unreadable' "$HOME_DIR/out" || fail "list does not flag the corrupt key"
$PY - "$HOME_DIR/keys/alice2.json" <<'PYEOF'
import json, sys
p = sys.argv[1]; d = json.load(open(p)); d["version"] = 9; json.dump(d, open(p, "w"))
PYEOF
expect_exit1 "unknown version" g keys export alice2
grep -q 'format version 9' "$HOME_DIR/err" || fail "version message: $(cat "$HOME_DIR/err")"
# One flipped byte of ciphertext: authentication fails, reported as such.
$PY - "$HOME_DIR/keys/alice3.json" <<'PYEOF'
import json, sys
p = sys.argv[1]; d = json.load(open(p)); c = d["ciphertext"]
d["ciphertext"] = ("1" if c[0] != "1" else "2") + c[1:]; json.dump(d, open(p, "w"))
PYEOF
expect_exit1 "tampered file" g keys export alice3
grep -q 'wrong passphrase (or the key file was modified)' "$HOME_DIR/err" || fail "tampered: message"
ls "$HOME_DIR"/core* 2>/dev/null && fail "core dump left behind"

# --- help teaches ---
g keys --help | grep -q 'Examples:' || fail "keys --help has no examples"

checks_report "all keys checks passed"
