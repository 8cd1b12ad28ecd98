# apt-cacher.sh PORT: apt-cacher-ng on the mirror, the lab hosts' only way to Debian packages.
# In the mirror image since it was added; a mirror made from an older image installs it here.
# ForceManaged: only the repositories apt-cacher-ng knows (Debian's among them) are fetched.
export DEBIAN_FRONTEND=noninteractive
if ! [ -x /usr/sbin/apt-cacher-ng ]; then
  apt-get install -y -qq --no-install-recommends apt-cacher-ng >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends apt-cacher-ng >/dev/null; }
fi
conf=/etc/apt-cacher-ng/zz-idcloud-lab.conf
printf 'Port: %s\nForceManaged: 1\n' "$1" > $conf.new
if cmp -s $conf.new $conf; then rm $conf.new; else mv $conf.new $conf; systemctl restart apt-cacher-ng; fi
systemctl enable -q --now apt-cacher-ng
