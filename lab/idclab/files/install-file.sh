# install-file.sh PATH: stdin becomes PATH (mode 0755), written beside it and moved into place
mkdir -p "$(dirname "$1")" && cat > "$1.new" && chmod 0755 "$1.new" && mv "$1.new" "$1"
