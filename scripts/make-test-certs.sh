#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Throwaway certificates for the TLS tests (tests/test_tls.c, tests/test_security.c) and the
# soak program, made at run time with the openssl command into DIR: nothing secret is
# committed and nothing expires in the tree. EC P-256 keys (fast handshakes), valid 2 days.
#
#   scripts/make-test-certs.sh DIR
#
#   ca.pem                the CA that signs the servers' certificates (clients trust it)
#   server.pem/.key       CN=localhost; localhost, 127.0.0.1 and ::1 as subject names
#   server2.pem/.key      the same names, another key and CN=convd-test-server-2 (reloads)
#   other-ca.pem          a CA nobody trusts
#   other-server.pem/.key localhost signed by other-ca (a server the clients must refuse)
#   clients-ca.pem        the CA of client certificates (tls_client_ca)
#   client.pem/.key       CN=studio-1, a client certificate from clients-ca
#   rogue-client.pem/.key CN=rogue, a client certificate from other-ca
set -eu
dir=${1:?usage: make-test-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # NAME CN
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -subj "/O=convd tests/CN=$2" -days 2 -sha256 \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -out "$1.pem" 2>/dev/null
}

leaf() { # NAME CN CA EXT
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/O=convd tests/CN=$2" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 2 \
        -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

SERVER_EXT='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'
CLIENT_EXT='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'

ca ca "convd test CA"
ca other-ca "convd untrusted CA"
ca clients-ca "convd test client CA"
leaf server localhost ca "$SERVER_EXT"
leaf server2 convd-test-server-2 ca "$SERVER_EXT"
leaf other-server localhost other-ca "$SERVER_EXT"
leaf client studio-1 clients-ca "$CLIENT_EXT"
leaf rogue-client rogue other-ca "$CLIENT_EXT"
rm -f ./*.srl
chmod 644 ./*.pem
