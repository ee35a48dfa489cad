package meshctl

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/readymesh/readymesh/peer/release"
)

// Release signing verbs: they need no broker and no login. A release is
// signed where the release key is kept, which should be a machine the
// brokers cannot reach; only the signed directory travels on to
// `releases publish`.

// passwordEnv holds the release key's password when no --password-file
// is given: for pipelines that take it from their secret store.
const passwordEnv = "READYMESH_RELEASE_PASSWORD"

func (e *env) releasesKeygen(args []string) error {
	fs := flag.NewFlagSet("releases keygen", flag.ContinueOnError)
	out := fs.String("out", "", "directory for release.key and release.pub (created if missing)")
	pwFile := fs.String("password-file", "", "file holding the password that encrypts release.key (else $"+passwordEnv+")")
	unencrypted := fs.Bool("unencrypted", false, "write release.key without a password, for a key kept in a secret store")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: releases keygen needs --out DIR", ErrUsage)
	}
	pub, err := keygen(*out, *pwFile, *unencrypted)
	if err != nil {
		return err
	}
	r := keygenResult{PublicKey: pub.String(), KeyID: pub.ID(), Encrypted: !*unencrypted,
		SecretKeyFile: filepath.Join(*out, release.SecretKeyFile), PublicKeyFile: filepath.Join(*out, release.PublicKeyFile)}
	if *asJSON {
		return printJSON(e.out, r)
	}
	r.print(e.out)
	return nil
}

// keygen makes the key pair, with a password unless unencrypted.
func keygen(dir, pwFile string, unencrypted bool) (release.PublicKey, error) {
	if unencrypted {
		if pwFile != "" {
			return release.PublicKey{}, fmt.Errorf("%w: releases keygen: --unencrypted and --password-file exclude each other", ErrUsage)
		}
		return release.KeygenUnencrypted(dir)
	}
	pw, err := releasePassword(pwFile)
	if err != nil {
		return release.PublicKey{}, fmt.Errorf("%w (or --unencrypted to store the key in the clear)", err)
	}
	return release.Keygen(dir, pw)
}

// keygenResult is what releases keygen made.
type keygenResult struct {
	PublicKey     string `json:"public_key"`
	KeyID         string `json:"key_id"`
	SecretKeyFile string `json:"secret_key_file"`
	PublicKeyFile string `json:"public_key_file"`
	Encrypted     bool   `json:"encrypted"`
}

func (r keygenResult) print(w io.Writer) {
	how := "encrypted with the password"
	if !r.Encrypted {
		how = "NOT encrypted"
	}
	fmt.Fprintf(w, "release key %s\n  secret key: %s (%s)\n  public key: %s\n  %s\n",
		r.KeyID, r.SecretKeyFile, how, r.PublicKeyFile, r.PublicKey)
	if !r.Encrypted {
		fmt.Fprintln(w, "# warning: anyone who can read release.key can sign releases that every agent installs: keep it in a secret store")
	}
	fmt.Fprintf(w, "# keep release.key off the brokers; give the fleet the public key with: meshctl releases trust %s\n", r.PublicKeyFile)
}

func (e *env) releasesSign(args []string) error {
	fs := flag.NewFlagSet("releases sign", flag.ContinueOnError)
	keyFile := fs.String("key", "", "the release secret key (release.key)")
	version := fs.String("version", "", "the release's version, as its binaries report it")
	minAgent := fs.String("min-agent", "", "the oldest agent version the release may update")
	notes := fs.String("notes", "", "release notes (at most 4 KiB)")
	nextKey := fs.String("next-key", "", "a release.pub: the key agents and brokers move to with this release")
	pwFile := fs.String("password-file", "", "file holding release.key's password (else $"+passwordEnv+")")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "DIR")
	if err != nil {
		return err
	}
	if *keyFile == "" || *version == "" {
		return fmt.Errorf("%w: releases sign needs --key FILE and --version V", ErrUsage)
	}
	opts := release.SignOptions{Version: *version, MinAgent: *minAgent, Notes: *notes}
	if *nextKey != "" {
		if opts.NextKey, err = readPublicKey(*nextKey); err != nil {
			return err
		}
	}
	key, err := release.ReadSecretKey(*keyFile, func() (string, error) { return releasePassword(*pwFile) })
	if err != nil {
		return err
	}
	m, err := release.Sign(pos[0], key, opts)
	if err != nil {
		return err
	}
	r := signResult{Manifest: m, KeyID: key.Public().ID(), NextKeyID: opts.NextKey.ID(),
		ManifestFile: filepath.Join(pos[0], release.ManifestFile), SignatureFile: filepath.Join(pos[0], release.SignatureFile)}
	if *asJSON {
		return printJSON(e.out, r)
	}
	return r.print(e.out, pos[0])
}

// signResult is what releases sign wrote: the manifest's fields, the key
// and the files.
type signResult struct {
	release.Manifest
	KeyID         string `json:"key_id"`
	NextKeyID     string `json:"next_key_id,omitempty"`
	ManifestFile  string `json:"manifest_file"`
	SignatureFile string `json:"signature_file"`
}

func (r signResult) print(w io.Writer, dir string) error {
	binaries := "binaries"
	if len(r.Binaries) == 1 {
		binaries = "binary"
	}
	fmt.Fprintf(w, "signed release %s with key %s: %d %s\n", r.Version, r.KeyID, len(r.Binaries), binaries)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PLATFORM\tSIZE\tSHA-256")
	for _, b := range r.Binaries {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", b.Platform, formatSize(b.Size), b.SHA256)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s and %s\n", r.ManifestFile, r.SignatureFile)
	if r.MinAgent != "" {
		fmt.Fprintf(w, "# agents older than %s will not take it\n", r.MinAgent)
	}
	if r.NextKeyID != "" {
		fmt.Fprintf(w, "# key rotation: agents that install it, and the brokers once it is published, move to key %s\n", r.NextKeyID)
	}
	fmt.Fprintf(w, "# next: meshctl releases publish %s\n", dir)
	return nil
}

// readPublicKey reads a release.pub file.
func readPublicKey(path string) (release.PublicKey, error) {
	text, err := readSmallFile(path)
	if err != nil {
		return release.PublicKey{}, err
	}
	k, err := release.ParsePublicKey(text)
	if err != nil {
		return release.PublicKey{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// releasePassword returns the release key's password: the content of
// pwFile without its final line break, else $READYMESH_RELEASE_PASSWORD.
// There is no prompt, so a script never hangs waiting for one.
func releasePassword(pwFile string) (string, error) {
	if pwFile == "" {
		if pw := os.Getenv(passwordEnv); pw != "" {
			return pw, nil
		}
		return "", fmt.Errorf("%w: give --password-file FILE or set %s", release.ErrNoPassword, passwordEnv)
	}
	text, err := readSmallFile(pwFile)
	if err != nil {
		return "", err
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(text, "\n"), "\r")
	if pw == "" {
		return "", fmt.Errorf("%w: %s is empty", release.ErrNoPassword, pwFile)
	}
	return pw, nil
}

// readSmallFile reads a file of at most 4 KiB: a key or a password.
func readSmallFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4<<10+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > 4<<10 {
		return "", fmt.Errorf("%s: larger than 4 KiB", path)
	}
	return string(b), nil
}
