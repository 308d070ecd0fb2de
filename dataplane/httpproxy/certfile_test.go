package httpproxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadTLSBounded: a certificate file larger than maxCertFile (a site
// naming /dev/zero, a log or a core by mistake) is refused with its path,
// not read whole.
func TestLoadTLSBounded(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.pem")
	if err := os.WriteFile(big, make([]byte, maxCertFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadTLS(&TLS{CertFiles: []string{big}})
	if err == nil || !strings.Contains(err.Error(), "larger than") || !strings.Contains(err.Error(), big) {
		t.Fatalf("loadTLS of an oversized file: %v, want it refused as larger than the bound, naming the file", err)
	}
}
