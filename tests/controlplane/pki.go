package main

// Start-up PKI: a throw-away CA, the apiserver serving certificate, client
// certificates for the admin and the controller-manager, the service-account
// signing key, and kubeconfig files. Everything is generated fresh on every
// start, so each start is a new, clean cluster, unless --keep-data reuses what
// the previous start wrote (loadPKI).

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const certValidity = 365 * 24 * time.Hour

type keyPair struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

type pki struct {
	dir string

	ca        keyPair
	caFile    string
	caKeyFile string

	servingCertFile string
	servingKeyFile  string

	admin keyPair
	cm    keyPair

	saKeyFile string
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newECKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// sign creates a certificate from tmpl signed by parent (self-signed when
// parent is nil).
func sign(tmpl *x509.Certificate, parent *keyPair) (keyPair, error) {
	key, err := newECKey()
	if err != nil {
		return keyPair{}, err
	}
	serial, err := newSerial()
	if err != nil {
		return keyPair{}, err
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(certValidity)
	issuer, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		return keyPair{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return keyPair{}, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return keyPair{}, err
	}
	return keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  keyPEM,
	}, nil
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, mode)
}

func (kp keyPair) write(dir, name string) (certFile, keyFile string, err error) {
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	if err = writeFile(certFile, kp.certPEM, 0o644); err != nil {
		return
	}
	err = writeFile(keyFile, kp.keyPEM, 0o600)
	return
}

func generatePKI(dir string, serviceIP net.IP) (*pki, error) {
	p := &pki{dir: dir}
	var err error

	p.ca, err = sign(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "scangate-controlplane-ca"},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	if p.caFile, p.caKeyFile, err = p.ca.write(dir, "ca"); err != nil {
		return nil, err
	}

	serving, err := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{
			"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local",
		},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback, serviceIP},
	}, &p.ca)
	if err != nil {
		return nil, fmt.Errorf("serving cert: %w", err)
	}
	if p.servingCertFile, p.servingKeyFile, err = serving.write(dir, "apiserver"); err != nil {
		return nil, err
	}

	client := func(cn string, orgs ...string) (keyPair, error) {
		return sign(&x509.Certificate{
			Subject:     pkix.Name{CommonName: cn, Organization: orgs},
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, &p.ca)
	}
	if p.admin, err = client("kubernetes-admin", "system:masters"); err != nil {
		return nil, fmt.Errorf("admin cert: %w", err)
	}
	if _, _, err = p.admin.write(dir, "admin"); err != nil {
		return nil, err
	}
	if p.cm, err = client("system:kube-controller-manager"); err != nil {
		return nil, fmt.Errorf("controller-manager cert: %w", err)
	}
	if _, _, err = p.cm.write(dir, "controller-manager"); err != nil {
		return nil, err
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("service-account key: %w", err)
	}
	saPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)})
	p.saKeyFile = filepath.Join(dir, "sa.key")
	if err = writeFile(p.saKeyFile, saPEM, 0o600); err != nil {
		return nil, err
	}
	return p, nil
}

// loadPKI reads the PKI a previous start wrote into dir (--keep-data), so the
// restarted cluster keeps its CA, certificates and service-account key and
// its clients' kubeconfigs stay valid.
func loadPKI(dir string) (*pki, error) {
	p := &pki{
		dir:             dir,
		caFile:          filepath.Join(dir, "ca.crt"),
		caKeyFile:       filepath.Join(dir, "ca.key"),
		servingCertFile: filepath.Join(dir, "apiserver.crt"),
		servingKeyFile:  filepath.Join(dir, "apiserver.key"),
		saKeyFile:       filepath.Join(dir, "sa.key"),
	}
	var err error
	if p.ca, err = readKeyPair(dir, "ca"); err != nil {
		return nil, err
	}
	if p.admin, err = readKeyPair(dir, "admin"); err != nil {
		return nil, err
	}
	if p.cm, err = readKeyPair(dir, "controller-manager"); err != nil {
		return nil, err
	}
	return p, nil
}

// readKeyPair reads NAME.crt and NAME.key (PKCS#8) as keyPair.write wrote them.
func readKeyPair(dir, name string) (keyPair, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, name+".crt"))
	if err != nil {
		return keyPair{}, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, name+".key"))
	if err != nil {
		return keyPair{}, err
	}
	certBlock, _ := pem.Decode(certPEM)
	keyBlock, _ := pem.Decode(keyPEM)
	if certBlock == nil || keyBlock == nil {
		return keyPair{}, fmt.Errorf("%s.crt or %s.key in %s is not PEM", name, name, dir)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return keyPair{}, fmt.Errorf("%s.crt: %w", name, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		return keyPair{}, fmt.Errorf("%s.key: %w", name, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return keyPair{}, fmt.Errorf("%s.key: not a signing key", name)
	}
	return keyPair{cert: cert, key: signer, certPEM: certPEM, keyPEM: keyPEM}, nil
}

// writeKubeconfig writes a self-contained kubeconfig (certificates embedded).
func (p *pki) writeKubeconfig(path, server, user string, kp keyPair) error {
	const name = "scangate-controlplane"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: p.ca.certPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.certPEM, ClientKeyData: kp.keyPEM}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = name
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// Write to a temporary file and rename, so a reader never sees a partial file.
	tmp := path + ".tmp"
	if err := clientcmd.WriteToFile(*cfg, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
