package readservice

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/readapi"
)

// parseRequest decodes and checks a request and fills in the defaults. Its
// error is the status to answer.
func parseRequest(m *nats.Msg) (readapi.Request, *readapi.Error) {
	var req readapi.Request
	if v := m.Header.Get(readapi.APIVersionHeader); v != "" && v != readapi.APIVersion {
		return req, statusf(readapi.StatusVersionMismatch, "Aof-Api-Version %q is not supported; this gateway speaks %s", v, readapi.APIVersion)
	}
	if len(m.Data) > readapi.MaxRequestBytes {
		return req, statusf(readapi.StatusTooLarge, "request body of %d bytes is over the %d-byte limit", len(m.Data), readapi.MaxRequestBytes)
	}
	if len(m.Data) > 0 {
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return req, statusf(readapi.StatusBadRequest, "malformed request: %v", err)
		}
	}
	if e := checkStart(req); e != nil {
		return req, e
	}
	if e := checkBounds(&req); e != nil {
		return req, e
	}
	return req, checkFollow(&req)
}

func checkStart(req readapi.Request) *readapi.Error {
	if starts(req) > 1 {
		return statusf(readapi.StatusBadRequest, "start_offset, start_seq and start_time are exclusive: give one")
	}
	if req.StartTime != "" {
		if _, e := parseStartTime(req.StartTime); e != nil {
			return e
		}
	}
	if req.EndOffset > 0 && req.StartSeq == 0 && req.EndOffset <= req.StartOffset {
		return statusf(readapi.StatusBadRequest, "end_offset %d must be above start_offset %d", req.EndOffset, req.StartOffset)
	}
	return nil
}

// starts counts the start positions req gives.
func starts(req readapi.Request) int {
	n := 0
	for _, given := range []bool{req.StartOffset > 0, req.StartSeq > 0, req.StartTime != ""} {
		if given {
			n++
		}
	}
	return n
}

func checkBounds(req *readapi.Request) *readapi.Error {
	switch {
	case req.MaxMsgs < 0:
		return statusf(readapi.StatusBadRequest, "max_msgs %d is negative", req.MaxMsgs)
	case req.MaxMsgs > readapi.MaxMaxMsgs:
		return statusf(readapi.StatusTooLarge, "max_msgs %d is over the limit of %d per batch", req.MaxMsgs, readapi.MaxMaxMsgs)
	case req.MaxBytes < 0:
		return statusf(readapi.StatusBadRequest, "max_bytes %d is negative", req.MaxBytes)
	case req.MaxBytes > readapi.MaxMaxBytes:
		return statusf(readapi.StatusTooLarge, "max_bytes %d is over the limit of %d per batch", req.MaxBytes, readapi.MaxMaxBytes)
	}
	if req.MaxMsgs == 0 {
		req.MaxMsgs = readapi.DefaultMaxMsgs
	}
	if req.MaxBytes == 0 {
		req.MaxBytes = readapi.DefaultMaxBytes
	}
	return nil
}

func checkFollow(req *readapi.Request) *readapi.Error {
	if !req.Follow {
		return nil
	}
	switch {
	case req.ExpiresMS < 0 || req.ExpiresMS > readapi.MaxExpiresMS:
		return statusf(readapi.StatusBadRequest, "expires_ms %d must be between 0 and %d", req.ExpiresMS, readapi.MaxExpiresMS)
	case req.HeartbeatMS != 0 && req.HeartbeatMS < readapi.MinHeartbeatMS:
		return statusf(readapi.StatusBadRequest, "heartbeat_ms %d is under the minimum of %d", req.HeartbeatMS, readapi.MinHeartbeatMS)
	}
	if req.ExpiresMS == 0 {
		req.ExpiresMS = readapi.DefaultExpiresMS
	}
	if req.HeartbeatMS == 0 {
		req.HeartbeatMS = readapi.DefaultHeartbeatMS
	}
	return nil
}

func statusf(code, format string, args ...any) *readapi.Error {
	return &readapi.Error{Code: code, Description: fmt.Sprintf(format, args...), Retryable: readapi.Retryable(code)}
}
