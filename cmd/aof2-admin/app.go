package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bop-aof/aof/config"
	"github.com/bop-aof/aof/control"
	"github.com/bop-aof/aof/fsck"
	"github.com/bop-aof/aof/internal/options"
	"github.com/bop-aof/aof/tiers"
	"github.com/bop-aof/aof/tiers/tier2"
)

// app holds what every command shares: the global flags, the streams and
// the lazily loaded configuration and connection.
type app struct {
	stdout, stderr io.Writer
	// env is the environment config.Load sees; nil means os.Environ().
	env []string
	// isTerminal says whether stdout is a terminal (progress bars).
	isTerminal bool

	configFile string
	natsURL    string
	timeout    time.Duration
	jsonOut    bool
	// flags are the global flags, those of flagKeys among them
	// configuration keys.
	flags *pflag.FlagSet

	cfg *config.Config
	nc  *nats.Conn
	// denials fails a request the NATS server refuses at once.
	denials *control.PermissionDenials
	// readDenied, set by the read commands before they connect, stops a
	// read the NATS server refuses (readerClient).
	readDenied func(op, subject string)
}

// flagKeys maps the global flags that set configuration keys onto their
// keys. They are applied as the gateway applies its own: defaults < file <
// environment < flags, then the whole is validated. --nats-url is not
// among them: it names where to connect, which nats.url does not when the
// gateway runs an embedded server (gatewayNATSURL).
var flagKeys = map[string]string{
	"creds":     "nats.creds",
	"nats-nkey": "nats.nkey",
	"user":      "nats.user",
	"password":  "nats.password",
	"nats-ca":   "nats.tls.ca",
	"nats-cert": "nats.tls.cert",
	"nats-key":  "nats.tls.key",
	"prefix":    "control.subject_prefix",
}

// flagAliases are the gateway's names of the admin's login flags,
// accepted so that one login line works with both commands.
var flagAliases = map[string]string{
	"nats-creds":    "creds",
	"nats-user":     "user",
	"nats-password": "password",
}

// usageError marks an error as a usage error (exit code 1).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// commandError marks an error returned by a command's work, so run can
// tell it from cobra's own argument and flag errors (which are usage errors).
type commandError struct{ err error }

func (e commandError) Error() string { return e.err.Error() }
func (e commandError) Unwrap() error { return e.err }

// exitCode maps the error of a command run to the process exit code.
func exitCode(err error) int {
	if err == nil {
		return control.ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		return control.ExitUsage
	}
	var ce commandError
	if !errors.As(err, &ce) {
		return control.ExitUsage // cobra: unknown command or flag, bad arguments
	}
	var pe problemsRemain
	if errors.As(err, &pe) {
		return control.ExitIO
	}
	return control.ExitCode(ce.err)
}

// problemsRemain is returned by manifest check when problems are left.
type problemsRemain struct{ n int }

func (e problemsRemain) Error() string { return fmt.Sprintf("%d problem(s) remain", e.n) }

// run executes aof2-admin with args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, env []string) int {
	a := &app{stdout: stdout, stderr: stderr, env: env}
	if f, ok := stdout.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			a.isTerminal = true
		}
	}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if a.nc != nil {
		a.nc.Close()
	}
	code := exitCode(err)
	if err != nil {
		fmt.Fprintf(stderr, "aof2-admin: %v\n", err)
		if code == control.ExitUsage {
			var ce commandError
			if !errors.As(err, &ce) {
				fmt.Fprintln(stderr, "Run 'aof2-admin --help' for usage.")
			}
		}
	}
	return code
}

// wrapRun marks the errors of fn as command errors.
func wrapRun(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := fn(cmd, args); err != nil {
			var ue usageError
			if errors.As(err, &ue) {
				return err
			}
			return commandError{err}
		}
		return nil
	}
}

const rootLong = `aof2-admin manages a bop AOF gateway's tiered store.

Online, it talks to a running gateway through its NATS micro service
(aof-admin, endpoints under aof.admin.>); read, tail, replay and export use
the gateways' read API (aof.read.<stream>), which a NATS user allowed to
publish to aof.read.> may call. With --root, dump, segments list,
manifest check, manifest inspect and read work offline on the data root of a
stopped gateway instead.

Configuration comes from ~/.config/bop-aof/config.toml, the file named by
AOF2_CONFIG or --config, and AOF2_* environment variables (for example
AOF2_NATS_URL, AOF2_TIER2_ENDPOINT, AOF2_TIER2_ACCESS_KEY). Only what a command
needs must be set: an incomplete configuration (no Tier 2 credentials, say)
is fine for commands that do not use it.

Exit codes: 0 success, 1 usage error, 2 segment or stream not found,
3 authentication failure (NATS or Tier 2) or a request the NATS server
refuses for lack of permission, 4 I/O error (or problems left by
manifest check).`

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "aof2-admin",
		Short: "Operate a bop AOF gateway: residency, seal, flush, hydrate, segments, manifest, read, replay, export",
		Long:  rootLong,
		Example: `  aof2-admin dump
  aof2-admin dump --root ./data --stream demo
  aof2-admin seal --stream demo
  aof2-admin hydrate --stream demo --segment 3
  aof2-admin manifest check --root ./data --repair
  aof2-admin read --stream demo --from 0 --count 10
  aof2-admin replay --stream demo --subject 'restore.{{stream}}' --jetstream`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.SetGlobalNormalizationFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		return pflag.NormalizedName(first(flagAliases[name], name))
	})
	pf := root.PersistentFlags()
	a.flags = pf
	pf.StringVar(&a.configFile, config.ConfigFlag, "", "configuration file (default ~/.config/bop-aof/config.toml, or $AOF2_CONFIG)")
	pf.StringVar(&a.natsURL, "nats-url", "", "NATS server URL(s) (default: where the gateway of the configuration connects: nats.url, or nats.embedded.host:port when nats.url is unset or the embedded server enabled)")
	pf.String("creds", "", "NATS credentials (.creds) file (nats.creds; also --nats-creds)")
	pf.String("nats-nkey", "", "NATS nkey seed file, or the seed itself (nats.nkey)")
	pf.String("user", "", "NATS user (nats.user; also --nats-user)")
	pf.String("password", "", "NATS password (nats.password; also --nats-password)")
	pf.String("nats-ca", "", "CA bundle to verify the NATS server (nats.tls.ca)")
	pf.String("nats-cert", "", "client certificate for NATS TLS (nats.tls.cert)")
	pf.String("nats-key", "", "client key for NATS TLS (nats.tls.key)")
	pf.String("prefix", "", "subject prefix of the admin service (control.subject_prefix, default aof.admin)")
	pf.DurationVar(&a.timeout, "timeout", 30*time.Second, "timeout of each request to the gateway")
	pf.BoolVar(&a.jsonOut, "json", false, "print the answer as JSON instead of a table")

	root.AddCommand(a.statusCommand(), a.dumpCommand(), a.sealCommand(), a.flushCommand(), a.hydrateCommand(),
		a.segmentsCommand(), a.manifestCommand(), a.readCommand(), a.tailCommand(), a.replayCommand(), a.exportCommand(), a.snapshotCommand(), a.configCommand(), a.recoverCommand(), a.clusterCommand(), a.genDocsCommand())
	return root
}

// config loads the configuration as the gateway does, defaults < file <
// environment < the flags of flagKeys, and validates it. Tier 2 is
// optional here: a configuration that validates only with Tier 2 disabled
// (typically no endpoint or credentials) is used without it, so commands
// that do not need Tier 2 still work. Anything else that does not validate
// is a usage error naming the key: falling back to the defaults would
// drop every setting (TLS files, login) without a word.
func (a *app) config(cmd *cobra.Command) (*config.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	env := a.env
	if env == nil {
		env = os.Environ()
	}
	env = append(append([]string(nil), env...), a.loginOverrides()...)
	opts := config.LoadOptions{File: a.configFile, Env: env, Flags: a.flags, FlagKeys: flagKeys}
	cfg, err := config.Load(opts)
	if err != nil {
		opts.Env = append(env, "AOF2_TIER2_ENABLED=false")
		if cfg, err = config.Load(opts); err != nil {
			return nil, usageError{fmt.Errorf("configuration not usable: %w", err)}
		}
		cfg.Tier2.Enabled = cfg.Tier2.Endpoint != "" && cfg.Tier2.Bucket != ""
	}
	a.cfg = cfg
	return cfg, nil
}

// loginMethods are the ways to log in to NATS, each with the flag that
// chooses it and the keys it takes.
var loginMethods = []struct {
	flag string
	keys []string
}{
	{"creds", []string{"nats.creds"}},
	{"nats-nkey", []string{"nats.nkey"}},
	{"user", []string{"nats.user", "nats.password"}},
}

// loginOverrides blanks the keys of the other ways to log in when a login
// flag is given (--creds, --nats-nkey, --user): the flag names who runs
// the command, and a login left in the file would otherwise be sent too.
// The file is often the gateway's, and nats-server takes its nkey over a
// user and password, so the operator would act as the gateway. They are
// environment entries placed after the real ones, so they sit above the
// file and the environment and below the flags.
func (a *app) loginOverrides() []string {
	if a.flags == nil {
		return nil
	}
	chosen := -1
	for i, m := range loginMethods {
		if changed(a.flags, m.flag) {
			chosen = i
		}
	}
	if chosen < 0 {
		return nil
	}
	var blank []string
	for i, m := range loginMethods {
		if i == chosen {
			continue
		}
		for _, k := range m.keys {
			blank = append(blank, config.EnvName(k)+"=")
		}
	}
	return blank
}

// connect connects to NATS with the login and TLS of the configuration
// (flags included), where the gateway of the configuration listens unless
// --nats-url says otherwise.
func (a *app) connect(cmd *cobra.Command) (*nats.Conn, error) {
	if a.nc != nil {
		return a.nc, nil
	}
	cfg, err := a.config(cmd)
	if err != nil {
		return nil, err
	}
	login, err := options.NATSLogin(cfg)
	if err != nil {
		return nil, usageError{err}
	}
	url := first(a.natsURL, gatewayNATSURL(cfg))
	a.denials = control.NewPermissionDenials()
	opts := append([]nats.Option{nats.Name("aof2-admin"), nats.Timeout(a.timeout), nats.MaxReconnects(0),
		nats.ErrorHandler(a.denials.ErrorHandler(a.printAsyncError))}, login...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, redactedConnectError(url, isNATSAuth(err), err)
	}
	a.nc = nc
	return nc, nil
}

// printAsyncError prints an asynchronous NATS error no request waits for
// (a slow consumer, say) instead of nats.go's raw line.
func (a *app) printAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if op, subject := control.PermissionViolation(err); op != "" && a.readDenied != nil {
		a.readDenied(op, subject)
		return
	}
	if sub != nil {
		fmt.Fprintf(a.stderr, "aof2-admin: nats: %v (subject %s)\n", err, sub.Subject)
		return
	}
	fmt.Fprintf(a.stderr, "aof2-admin: nats: %v\n", err)
}

func isNATSAuth(err error) bool {
	if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
		return true
	}
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "authorization violation") || strings.Contains(s, "authentication")
}

// client returns a client of the gateway's admin service.
func (a *app) client(cmd *cobra.Command) (*control.Client, error) {
	nc, err := a.connect(cmd)
	if err != nil {
		return nil, err
	}
	cfg, _ := a.config(cmd)
	return control.NewClient(nc, cfg.Control.SubjectPrefix, control.WithPermissionDenials(a.denials)), nil
}

// requestCtx bounds one request by --timeout.
func (a *app) requestCtx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), a.timeout)
}

// openRoot opens a stopped gateway's data root without Tier 2, with the
// options of the configuration.
func (a *app) openRoot(cmd *cobra.Command, root string) (*tiers.Store, error) {
	so, err := a.storeOptions(cmd, root, false)
	if err != nil {
		return nil, err
	}
	return fsck.OpenOffline(cmd.Context(), so)
}

// storeOptions returns the store options for the data root root, built
// from the configuration as the gateway builds them (budgets, workers,
// retries), and with a Tier 2 client when withTier2 is set and the
// configuration names one.
func (a *app) storeOptions(cmd *cobra.Command, root string, withTier2 bool) (tiers.Options, error) {
	cfg, err := a.config(cmd)
	if err != nil {
		return tiers.Options{}, err
	}
	so := options.Store(cfg)
	so.Root = root
	if withTier2 {
		if so.Tier2, err = a.tier2Client(cmd); err != nil {
			return tiers.Options{}, err
		}
	}
	return so, nil
}

// answer runs a command that works both ways: offline on the data root
// of a stopped gateway when root is set, else through the running
// gateway's control service.
func answer[Res any](a *app, cmd *cobra.Command, root string,
	offline func(context.Context, *tiers.Store) (Res, error),
	online func(context.Context, *control.Client) (Res, error)) (Res, error) {
	var zero Res
	ctx, cancel := a.requestCtx(cmd)
	defer cancel()
	if root != "" {
		s, err := a.openRoot(cmd, root)
		if err != nil {
			return zero, err
		}
		defer s.Close()
		return offline(ctx, s)
	}
	c, err := a.client(cmd)
	if err != nil {
		return zero, err
	}
	return online(ctx, c)
}

// tier2Client connects to Tier 2 when the configuration names it; nil
// without an error when it does not.
func (a *app) tier2Client(cmd *cobra.Command) (tier2.Bucket, error) {
	cfg, err := a.config(cmd)
	if err != nil {
		return nil, err
	}
	t := cfg.Tier2
	if t.Endpoint == "" || t.Bucket == "" {
		return nil, nil
	}
	ctx, cancel := a.requestCtx(cmd)
	defer cancel()
	c, err := tier2.New(ctx, options.Tier2(cfg))
	if err != nil {
		if tier2.Reason(err) == tier2.ReasonAuth {
			return nil, control.Errorf(control.CodeUnauthorized, "tier 2: %v", err)
		}
		return nil, control.Errorf(control.CodeInternal, "tier 2: %v", err)
	}
	return c, nil
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// changed reports whether a flag was set on the command line.
func changed(fs *pflag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Changed
}
