# apt-proxy.sh PATH: stdin becomes apt's proxy configuration PATH, when it differs
cat > "$1.new"
if cmp -s "$1.new" "$1"; then rm "$1.new"; else mv "$1.new" "$1"; fi
