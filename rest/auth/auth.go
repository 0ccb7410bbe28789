// Package auth holds the credentials a worker's REST API checks: users with bcrypt passwords
// in an htpasswd file (HTTP Basic), bearer tokens by their SHA-256 in a tokens file, and the
// names of verified TLS client certificates. Files are read again when they change, so users
// and tokens can be added or revoked without a restart.
package auth

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	htpasswd "github.com/tg123/go-htpasswd"
)

// Credentials authenticates requests. The zero value knows nobody.
type Credentials struct {
	// UsersFile is an htpasswd file of bcrypt hashes (htpasswd -B); "" for none.
	UsersFile string
	// TokensFile has one token per line as name:sha256:<hex of the token's SHA-256>; "" for none.
	TokensFile string
	// ClientCertificates takes the common name of a verified TLS client certificate as the
	// caller's name.
	ClientCertificates bool
	// Log receives reload failures; nil means slog.Default().
	Log *slog.Logger

	mu       sync.Mutex
	users    *htpasswd.File
	usersMod time.Time
	tokens   map[[sha256.Size]byte]string
	tokMod   time.Time
	checked  time.Time
	// verified caches Basic credentials bcrypt accepted (by the SHA-256 of user:password), so
	// that a client making many requests pays bcrypt's cost once per cacheFor.
	verified map[[sha256.Size]byte]verifiedEntry
}

type verifiedEntry struct {
	name  string
	until time.Time
}

// recheckEvery is how often the files' modification times are looked at; cacheFor how long a
// verified password is trusted without bcrypt.
const (
	recheckEvery = 2 * time.Second
	cacheFor     = 5 * time.Minute
)

// Load reads the files once, so that a worker with a missing or malformed file fails to start
// rather than refuse every request.
func (c *Credentials) Load() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reload(true)
}

// Authenticate returns the caller's name: from a verified client certificate, a Basic user
// and password, or a bearer token. ok is false when the request carries no credentials this
// worker accepts.
func (c *Credentials) Authenticate(r *http.Request) (name string, ok bool) {
	c.mu.Lock()
	if time.Since(c.checked) >= recheckEvery {
		if err := c.reload(false); err != nil {
			c.logger().Error("reloading REST credentials failed; keeping the ones read before", "err", err)
		}
	}
	c.mu.Unlock()
	if user, pass, found := r.BasicAuth(); found {
		return c.basic(user, pass)
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return c.token(strings.TrimSpace(h[7:]))
	}
	if c.ClientCertificates && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		if cn := r.TLS.VerifiedChains[0][0].Subject.CommonName; cn != "" {
			return cn, true
		}
	}
	return "", false
}

func (c *Credentials) basic(user, pass string) (string, bool) {
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	c.mu.Lock()
	users := c.users
	if v, ok := c.verified[key]; ok && time.Now().Before(v.until) {
		c.mu.Unlock()
		return v.name, true
	}
	c.mu.Unlock()
	if users == nil || !users.Match(user, pass) {
		return "", false
	}
	c.mu.Lock()
	if c.verified == nil {
		c.verified = map[[sha256.Size]byte]verifiedEntry{}
	}
	c.verified[key] = verifiedEntry{name: user, until: time.Now().Add(cacheFor)}
	c.mu.Unlock()
	return user, true
}

func (c *Credentials) token(tok string) (string, bool) {
	if tok == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(tok))
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, name := range c.tokens {
		if subtle.ConstantTimeCompare(h[:], sum[:]) == 1 {
			return name, true
		}
	}
	return "", false
}

// reload reads the files that changed since they were read; must is set on the first load.
func (c *Credentials) reload(must bool) error {
	c.checked = time.Now()
	if c.UsersFile != "" {
		mod, err := modTime(c.UsersFile)
		if err != nil {
			return fmt.Errorf("users file: %w", err)
		}
		if must || !mod.Equal(c.usersMod) {
			lines, err := withoutComments(c.UsersFile)
			if err != nil {
				return fmt.Errorf("users file: %w", err)
			}
			var bad []string
			f, err := htpasswd.NewFromReader(strings.NewReader(lines), []htpasswd.PasswdParser{htpasswd.AcceptBcrypt}, func(err error) { bad = append(bad, err.Error()) })
			if err != nil {
				return fmt.Errorf("users file %s: %w", c.UsersFile, err)
			}
			if len(bad) > 0 {
				return fmt.Errorf("users file %s: lines that are not user:bcrypt-hash (create them with htpasswd -B): %s", c.UsersFile, strings.Join(bad, "; "))
			}
			c.users, c.usersMod, c.verified = f, mod, nil
		}
	}
	if c.TokensFile != "" {
		mod, err := modTime(c.TokensFile)
		if err != nil {
			return fmt.Errorf("tokens file: %w", err)
		}
		if must || !mod.Equal(c.tokMod) {
			tokens, err := readTokens(c.TokensFile)
			if err != nil {
				return err
			}
			c.tokens, c.tokMod = tokens, mod
		}
	}
	return nil
}

// withoutComments is a file's lines without blank lines and # comments, which htpasswd files
// may have (Apache skips them too).
func withoutComments(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var out strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			out.WriteString(t + "\n")
		}
	}
	return out.String(), nil
}

// readTokens reads name:sha256:<hex> lines; blank lines and # comments are skipped.
func readTokens(path string) (map[[sha256.Size]byte]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	out := map[[sha256.Size]byte]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, ":")
		var sum [sha256.Size]byte
		b, err := hex.DecodeString(parts[len(parts)-1])
		if len(parts) != 3 || parts[0] == "" || parts[1] != "sha256" || err != nil || len(b) != len(sum) {
			return nil, fmt.Errorf("tokens file %s line %d: want name:sha256:<64 hex digits of the token's SHA-256> (printf %%s \"$TOKEN\" | sha256sum)", path, n)
		}
		copy(sum[:], b)
		out[sum] = parts[0]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return out, nil
}

func modTime(path string) (time.Time, error) {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}, err
	}
	return st.ModTime(), nil
}

func (c *Credentials) logger() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}

// RecheckNow makes the next Authenticate look at the files again, rather than after
// recheckEvery; for tests. It returns the time the files were last looked at.
func (c *Credentials) RecheckNow() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	last := c.checked
	c.checked = time.Time{}
	return last
}
