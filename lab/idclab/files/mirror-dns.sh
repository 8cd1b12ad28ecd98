# mirror-dns.sh: stdin is the Corefile, the zone file and the unit, separated by lines of
# "---8<---"; install them under /etc/idcloud-dns and (re)start idcloud-dns.service
set -e
mkdir -p /etc/idcloud-dns
awk -v dir=/etc/idcloud-dns 'BEGIN {n = 0; f[0] = "Corefile"; f[1] = "zone"; f[2] = "unit"}
     /^---8<---$/ {n++; next} {print > (dir "/" f[n] ".new")}'
mv /etc/idcloud-dns/Corefile.new /etc/idcloud-dns/Corefile
mv /etc/idcloud-dns/zone.new /etc/idcloud-dns/zone
rm -f /etc/idcloud-dns/hosts
mv /etc/idcloud-dns/unit.new /etc/systemd/system/idcloud-dns.service
systemctl daemon-reload
systemctl enable idcloud-dns.service >/dev/null 2>&1
systemctl restart idcloud-dns.service
