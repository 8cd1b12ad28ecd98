# mirror-ntp.sh: chrony on the mirror is the lab's NTP server; -x: it shares the VM's clock,
# never steps it. It serves only its local clock: Debian's pool and server lines go (an IDC's
# NTP server has its own references; the lab's would be outside it).
command -v chronyd >/dev/null || apt-get install -y -qq chrony >/dev/null 2>&1
sed -i -E '/^[[:space:]]*(pool|server|peer)[[:space:]]/d' /etc/chrony/chrony.conf
find /etc/chrony/sources.d -name '*.sources' -delete 2>/dev/null
printf 'allow all\nlocal stratum 8\n' > /etc/chrony/conf.d/idcloud-lab.conf
grep -q -- '-x' /etc/default/chrony || echo 'DAEMON_OPTS="-F 1 -x"' > /etc/default/chrony
systemctl restart chrony
