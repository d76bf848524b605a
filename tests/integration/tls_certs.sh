#!/bin/sh
# tls_certs.sh DIR: a test CA, a server cert for 127.0.0.1/localhost, a client
# cert, and a second (wrong) CA, all under DIR (openssl CLI only).
set -eu
d=$1
mkdir -p "$d"
cd "$d"
gen_ca() { # name
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" \
        -keyout "$1.key" -out "$1.crt" 2>/dev/null
}
gen_leaf() { # name ca ext
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" \
        -keyout "$1.key" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" \
        -CAcreateserial -days 2 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
gen_ca ca
gen_ca wrongca
gen_leaf server ca "subjectAltName=IP:127.0.0.1,DNS:localhost"
gen_leaf client ca "extendedKeyUsage=clientAuth"
