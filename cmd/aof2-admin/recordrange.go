package main

import (
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/bop-aof/aof/aofclient"
)

// recordRange is the part of a stream replay and export work on: a start
// by offset, JetStream sequence or time, and an end by the same, each end
// exclusive. The read API ends a read at an offset; an end by sequence or
// time is applied here, on the records as they come.
type recordRange struct {
	stream   string
	from     uint64
	fromSeq  uint64
	fromTime string
	to       uint64
	toSeq    uint64
	toTime   string

	// Parsed by options.
	startTime, endTime time.Time
	startsAtOffset     bool // not by sequence or time
}

func (r *recordRange) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&r.stream, "stream", "", "stream to read")
	fs.Uint64Var(&r.from, "from", 0, "first logical offset (default 0)")
	fs.Uint64Var(&r.fromSeq, "from-seq", 0, "start at the first record whose JetStream sequence is at least this")
	fs.StringVar(&r.fromTime, "from-time", "", "start at the first record appended at or after this time (RFC 3339)")
	fs.Uint64Var(&r.to, "to", 0, "stop before this offset (default: the durable end of the stream when the read reaches it)")
	fs.Uint64Var(&r.toSeq, "to-seq", 0, "stop before the first record whose JetStream sequence is at least this")
	fs.StringVar(&r.toTime, "to-time", "", "stop before the first record appended at or after this time (RFC 3339)")
}

// options validates the flags and returns the read options of the range.
func (r *recordRange) options(fs *pflag.FlagSet) ([]aofclient.ReadOption, error) {
	if r.stream == "" {
		return nil, usagef("needs --stream")
	}
	starts := 0
	for _, f := range []string{"from", "from-seq", "from-time"} {
		if changed(fs, f) {
			starts++
		}
	}
	if starts > 1 {
		return nil, usagef("--from, --from-seq and --from-time exclude each other")
	}
	var err error
	if r.startTime, err = parseFlagTime("from-time", r.fromTime); err != nil {
		return nil, err
	}
	if r.endTime, err = parseFlagTime("to-time", r.toTime); err != nil {
		return nil, err
	}
	if changed(fs, "to") && r.to <= r.from && !changed(fs, "from-seq") && !changed(fs, "from-time") {
		return nil, usagef("--to %d must be above --from %d", r.to, r.from)
	}
	var opts []aofclient.ReadOption
	switch {
	case changed(fs, "from-seq"):
		opts = append(opts, aofclient.FromSeq(r.fromSeq))
	case changed(fs, "from-time"):
		opts = append(opts, aofclient.FromTime(r.startTime))
	default:
		r.startsAtOffset = true
		opts = append(opts, aofclient.FromOffset(r.from))
	}
	if r.to > 0 {
		opts = append(opts, aofclient.ToOffset(r.to))
	}
	return opts, nil
}

// past reports whether rec is at or after the end by sequence or time.
func (r *recordRange) past(rec aofclient.Record) bool {
	return (r.toSeq > 0 && rec.Seq >= r.toSeq) || (!r.endTime.IsZero() && !rec.Time.Before(r.endTime))
}

// endsByOffsetOnly: the read's end is an offset (or the durable end), so
// the number of records is known ahead.
func (r *recordRange) endsByOffsetOnly() bool { return r.toSeq == 0 && r.endTime.IsZero() }

func parseFlagTime(flag, v string) (time.Time, error) {
	if strings.TrimSpace(v) == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, usagef("--%s %q is not an RFC 3339 time (like 2026-01-02T15:04:05Z): %v", flag, v, err)
	}
	return t, nil
}
