package options

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/bop-aof/aof/config"
)

// NATSLogin returns the nats.go options that log in and set up TLS as the
// configuration says: nats.creds, nats.nkey, nats.user and nats.password,
// and nats.tls.* (or tls.*). The gateway and aof2-admin connect with the
// same options, so a key means the same to both. Errors name the key and
// never contain a seed.
func NATSLogin(cfg *config.Config) ([]nats.Option, error) {
	n := cfg.NATS
	var opts []nats.Option
	if n.Creds != "" {
		opts = append(opts, nats.UserCredentials(n.Creds))
	}
	if n.NKey != "" {
		o, err := nkeyOption(n.NKey)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	if n.User != "" {
		opts = append(opts, nats.UserInfo(n.User, n.Password))
	}
	if t := cfg.NATSTLS(); !t.IsZero() {
		if t.CA != "" {
			opts = append(opts, nats.RootCAs(t.CA))
		}
		if t.Cert != "" || t.Key != "" {
			opts = append(opts, nats.ClientCert(t.Cert, t.Key))
		}
	}
	return opts, nil
}

// nkeyOption authenticates with an nkey given either as a seed file path or
// as the seed itself (it starts with "S"). Errors never contain the seed.
func nkeyOption(k string) (nats.Option, error) {
	if strings.HasPrefix(k, "S") && !strings.ContainsAny(k, `/\.`) {
		kp, err := nkeys.FromSeed([]byte(k))
		if err != nil {
			return nil, errors.New("nats.nkey: the inline seed is not a valid nkey seed")
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, errors.New("nats.nkey: the inline seed is not a valid nkey seed")
		}
		return nats.Nkey(pub, func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) }), nil
	}
	o, err := nats.NkeyOptionFromSeed(k)
	if err != nil {
		return nil, fmt.Errorf("nats.nkey: cannot read the seed file named in nats.nkey (%s)", errors.Unwrap(err))
	}
	return o, nil
}
