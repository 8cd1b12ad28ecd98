# frr-install.sh: stdin is frr.conf; reload FRR when it changed (a new `frr defaults` line, read
# only at start, or a failed reload restarts it); then wait until bgpd answers
cat > /etc/frr/frr.conf.new
if cmp -s /etc/frr/frr.conf.new /etc/frr/frr.conf; then
  rm /etc/frr/frr.conf.new
else
  old=$(grep '^frr defaults' /etc/frr/frr.conf 2>/dev/null)
  new=$(grep '^frr defaults' /etc/frr/frr.conf.new)
  mv /etc/frr/frr.conf.new /etc/frr/frr.conf
  chown frr:frr /etc/frr/frr.conf
  chmod 0640 /etc/frr/frr.conf
  if [ "$old" = "$new" ] && systemctl is-active -q frr && systemctl reload frr; then
    echo reloaded
  else
    systemctl restart frr; echo restarted
  fi
fi
for i in $(seq 1 40); do vtysh -c 'show bgp summary' >/dev/null 2>&1 && exit 0; sleep 0.5; done
echo 'bgpd does not answer' >&2; exit 1
