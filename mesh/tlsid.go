package mesh

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// alpn names the session protocol inside QUIC's TLS handshake.
const alpn = "readymesh-session/1"

// certificate makes a self-signed TLS certificate, valid for a day, whose
// key is the peer's own ed25519 identity key, so the other side can pin the
// peer ID it expects straight from the certificate. No CA is involved: the
// grant says which two keys may talk, and each side checks the other's.
func certificate(key crypto.PrivKey) (tls.Certificate, error) {
	raw, err := key.Raw()
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: identity key: %w", err)
	}
	if key.Type() != crypto.Ed25519 || len(raw) != ed25519.PrivateKeySize {
		return tls.Certificate{}, errors.New("tls: identity key is not ed25519")
	}
	priv := ed25519.PrivateKey(raw)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "readymesh peer"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}

// certPeer returns the peer ID of the key in a presented certificate chain.
func certPeer(rawCerts [][]byte) (peer.ID, error) {
	if len(rawCerts) != 1 {
		return "", fmt.Errorf("tls: peer presented %d certificates, want 1", len(rawCerts))
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return "", fmt.Errorf("tls: peer certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return "", errors.New("tls: peer certificate key is not ed25519")
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return "", fmt.Errorf("tls: peer certificate not self-signed by its key: %w", err)
	}
	lpub, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(lpub)
}

// pinned returns a VerifyPeerCertificate that accepts only want.
func pinned(want peer.ID) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		got, err := certPeer(raw)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%w: presented %s, want %s", ErrGrantPeer, got, want)
		}
		return nil
	}
}

// clientTLS is the technician's side: it presents its key and accepts only
// the machine the grant names. ServerName carries the session ID, so the
// agent knows which grant to check before it sees any application data.
func clientTLS(cert tls.Certificate, session string, machine peer.ID) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{cert},
		ServerName:            "s" + session,
		NextProtos:            []string{alpn},
		InsecureSkipVerify:    true, // no CA; VerifyPeerCertificate pins the key
		VerifyPeerCertificate: pinned(machine),
	}
}
