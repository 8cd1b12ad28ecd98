# pod-route.sh: stdin is idcloud-lab-pod-route.service; (re)start it when it changed or is not active
unit=/etc/systemd/system/idcloud-lab-pod-route.service
cat > "$unit.new"
if cmp -s "$unit.new" "$unit" && systemctl is-active -q idcloud-lab-pod-route.service; then
  rm "$unit.new"; exit 0
fi
systemctl stop idcloud-lab-pod-route.service 2>/dev/null || true
mv "$unit.new" "$unit"
systemctl daemon-reload && systemctl enable -q idcloud-lab-pod-route.service &&
  systemctl restart idcloud-lab-pod-route.service
