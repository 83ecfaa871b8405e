#!/bin/bash
# A throwaway single-node Ceph cluster with a RADOS Gateway (S3) for tests: one monitor, one
# memstore OSD, one radosgw; no cephx (tests only, loopback only). Usage:
#   ceph-up.sh DIR RGW_PORT MON_PORT
# Prints "ready" once S3 answers. Credentials: access key "test", secret "testtesttest".
set -euo pipefail
D=${1:?dir}; RGW_PORT=${2:?rgw port}; MON_PORT=${3:?mon port}
rm -rf "$D"; mkdir -p "$D"/{run,log,mon.a,osd.0,rgw}
FSID=$(cat /proc/sys/kernel/random/uuid)
# Every messenger mode is crc: with auth none, the default "secure" mode makes radosgw loop
# on an auth error for minutes.
cat > "$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms mon service mode = crc
ms mon cluster mode = crc
ms client mode = crc
ms service mode = crc
ms cluster mode = crc
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
run dir = $D/run
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
mon data = $D/mon.\$id
osd data = $D/osd.\$id
keyring = $D/keyring
osd objectstore = memstore
memstore device bytes = 4294967296
osd memory target = 1073741824
[client.rgw.gw]
# tcp_nodelay: without it every small GET waits ~40 ms (Nagle meets delayed ACK).
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw data = $D/rgw
rgw thread pool size = 64
CONF
C="-c $D/ceph.conf"
ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$D/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --addv a "[v2:127.0.0.1:$MON_PORT]" --fsid "$FSID" "$D/monmap" >/dev/null
timeout 60 ceph-mon $C --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring"
timeout 60 ceph-mon $C -i a
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
ID=$(timeout 60 ceph $C osd new "$OSD_UUID")
timeout 60 ceph-osd $C -i "$ID" --mkfs --osd-uuid "$OSD_UUID" 2>"$D/log/osd-mkfs.err" >/dev/null
timeout 60 ceph-osd $C -i "$ID"
for i in $(seq 300); do
  timeout 10 ceph $C osd stat 2>/dev/null | grep -q '1 up' && break
  [ "$i" = 300 ] && { echo "osd not up" >&2; exit 1; }
  sleep 0.2
done
timeout 120 radosgw $C -n client.rgw.gw
for i in $(seq 600); do
  curl -s -m 2 -o /dev/null "http://127.0.0.1:$RGW_PORT/" && break
  [ "$i" = 600 ] && { echo "rgw not up" >&2; exit 1; }
  sleep 0.2
done
timeout 60 radosgw-admin $C user create --uid test --display-name test --access-key test --secret testtesttest >/dev/null
echo ready
