package store

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
)

// HA1MD5 is RFC 2617's HA1 = MD5(username ":" realm ":" password), hex.
// It is all a digest verifier needs for MD5 (and MD5-sess) challenges.
func HA1MD5(username, realm, password string) string {
	h := md5.Sum([]byte(username + ":" + realm + ":" + password))
	return hex.EncodeToString(h[:])
}

// HA1SHA256 is RFC 7616 / RFC 8760's HA1 for algorithm SHA-256.
func HA1SHA256(username, realm, password string) string {
	h := sha256.Sum256([]byte(username + ":" + realm + ":" + password))
	return hex.EncodeToString(h[:])
}
