package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ProtocolType is the group protocol type Kafka Connect's workers use.
const ProtocolType = "connect"

// protocolName names Sluice's member metadata and assignment format (JSON), so a Sluice worker
// never joins the same group as Kafka Connect's Java workers by mistake and misreads them.
const protocolName = "sluice-v1"

// MemberState is what a member tells the leader when it joins: where its REST API is, how far
// it has read the config topic, and what it runs.
type MemberState struct {
	URL          string `json:"url"`
	ConfigOffset int64  `json:"config_offset"`
	Running      Work   `json:"running"`
	// View is the group's view from the last assignment this member received.
	View *View `json:"view,omitempty"`
	// WorkerID, Version and Started describe the worker for the cluster's picture of its
	// members (GET /cluster); the leader copies them into the view it hands out.
	WorkerID string    `json:"worker_id,omitempty"`
	Version  string    `json:"version,omitempty"`
	Started  time.Time `json:"started,omitzero"`
}

// WorkerMeta is what the group knows of one member besides its work: who it is and where its
// REST API is, as the member said when it last joined.
type WorkerMeta struct {
	WorkerID     string    `json:"worker_id"`
	URL          string    `json:"url"`
	Version      string    `json:"version,omitempty"`
	Started      time.Time `json:"started,omitzero"`
	ConfigOffset int64     `json:"config_offset"`
}

// JoinedMember is one member of the group as the leader sees it.
type JoinedMember struct {
	ID string
	MemberState
}

// Error codes of an assignment, as Kafka Connect has them.
const (
	NoError        int16 = 0
	ConfigMismatch int16 = 1
)

// Assignment is the leader's word to one member for a generation.
type Assignment struct {
	Error        int16  `json:"error"`
	Leader       string `json:"leader"`
	LeaderURL    string `json:"leader_url"`
	ConfigOffset int64  `json:"config_offset"`
	Assigned     Work   `json:"assigned"`
	Revoked      Work   `json:"revoked"`
	// Delay is how long lost work waits; the members rejoin after it.
	Delay time.Duration `json:"delay"`
	// View is the leader's memory after this round; the member sends it back when it rejoins.
	View *View `json:"view,omitempty"`
	// Generation is filled in by the member from the group, not sent.
	Generation int32  `json:"-"`
	MemberID   string `json:"-"`
}

// Handler is the worker's side of the membership.
type Handler interface {
	// State is what this member reports when it (re)joins. A call means a rebalance round has
	// begun for this member; it lasts until Assigned (or Lost).
	State() MemberState
	// Lead computes the assignment of every member; called on the leader only.
	Lead(ctx context.Context, generation int32, members []JoinedMember) map[string]Assignment
	// Assigned hands this member its assignment. It returns once revoked work has stopped.
	Assigned(ctx context.Context, a Assignment)
	// Lost says this member cannot reach the group coordinator or was thrown out: it must
	// stop its work now, so that it cannot run as a zombie beside the work's new owner.
	Lost(reason error)
}

// Config are the membership settings.
type Config struct {
	Group             string
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	HeartbeatInterval time.Duration
	Logger            *slog.Logger
}

// Membership keeps a worker in the group: join, sync, heartbeat, rejoin, leave.
type Membership struct {
	client  *kgo.Client
	cfg     Config
	handler Handler
	log     *slog.Logger

	memberID   string
	generation int32
	rejoin     chan struct{}
}

// NewMembership returns a member that talks to the group's coordinator through client.
func NewMembership(client *kgo.Client, cfg Config, handler Handler) *Membership {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	// A member gives up when no heartbeat got through for the session timeout minus one
	// interval; with fewer than three heartbeats per session (session.timeout.ms=6000 and the
	// default heartbeat.interval.ms=3000) it would give up before its next heartbeat had a
	// chance, and drop its work every few seconds. Heartbeat more often instead.
	if third := cfg.SessionTimeout / 3; cfg.HeartbeatInterval > third && third > 0 {
		log.Info("heartbeating more often than heartbeat.interval.ms: at least three heartbeats per session timeout",
			"heartbeat.interval.ms", cfg.HeartbeatInterval.Milliseconds(), "session.timeout.ms", cfg.SessionTimeout.Milliseconds(),
			"interval", third)
		cfg.HeartbeatInterval = third
	}
	return &Membership{client: client, cfg: cfg, handler: handler, log: log, rejoin: make(chan struct{}, 1)}
}

// RequestRejoin asks for a new rebalance round soon (new config, a leader's delay over).
func (m *Membership) RequestRejoin() {
	select {
	case m.rejoin <- struct{}{}:
	default:
	}
}

// Run stays in the group until ctx is done, then leaves it.
func (m *Membership) Run(ctx context.Context) error {
	defer m.leave()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		a, err := m.joinAndSync(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			m.log.Warn("joining the worker group failed; retrying", "group", m.cfg.Group, "err", err)
			time.Sleep(backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		m.handler.Assigned(ctx, a)
		if !a.Revoked.empty() {
			// Revoked work has stopped: rejoin at once so the leader can hand it on.
			continue
		}
		if err := m.heartbeat(ctx, a); err != nil && ctx.Err() == nil {
			m.log.Info("rejoining the worker group", "reason", err)
		}
	}
	return nil
}

func (m *Membership) joinAndSync(ctx context.Context) (Assignment, error) {
	state := m.handler.State()
	meta, _ := json.Marshal(state)
	for {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group = m.cfg.Group
		req.SessionTimeoutMillis = int32(m.cfg.SessionTimeout.Milliseconds())
		req.RebalanceTimeoutMillis = int32(m.cfg.RebalanceTimeout.Milliseconds())
		req.MemberID = m.memberID
		req.ProtocolType = ProtocolType
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = protocolName, meta
		req.Protocols = append(req.Protocols, p)
		resp, err := req.RequestWith(ctx, m.client)
		if err != nil {
			return Assignment{}, fmt.Errorf("join group %s: %w", m.cfg.Group, err)
		}
		if resp.ErrorCode == kerr.MemberIDRequired.Code {
			m.memberID = resp.MemberID
			continue
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			if errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) {
				m.memberID = ""
			}
			return Assignment{}, fmt.Errorf("join group %s: %w", m.cfg.Group, err)
		}
		m.memberID, m.generation = resp.MemberID, resp.Generation
		var assignments []kmsg.SyncGroupRequestGroupAssignment
		if resp.LeaderID == m.memberID {
			members := make([]JoinedMember, 0, len(resp.Members))
			for _, jm := range resp.Members {
				var st MemberState
				if err := json.Unmarshal(jm.ProtocolMetadata, &st); err != nil {
					return Assignment{}, fmt.Errorf("member %s sent metadata Sluice cannot read: %w", jm.MemberID, err)
				}
				members = append(members, JoinedMember{ID: jm.MemberID, MemberState: st})
			}
			for id, a := range m.handler.Lead(ctx, resp.Generation, members) {
				b, _ := json.Marshal(a)
				ga := kmsg.NewSyncGroupRequestGroupAssignment()
				ga.MemberID, ga.MemberAssignment = id, b
				assignments = append(assignments, ga)
			}
		}
		sync := kmsg.NewPtrSyncGroupRequest()
		sync.Group, sync.Generation, sync.MemberID = m.cfg.Group, resp.Generation, m.memberID
		pt, pn := ProtocolType, protocolName
		sync.ProtocolType, sync.Protocol = &pt, &pn
		sync.GroupAssignment = assignments
		sresp, err := sync.RequestWith(ctx, m.client)
		if err != nil {
			return Assignment{}, fmt.Errorf("sync group %s: %w", m.cfg.Group, err)
		}
		if err := kerr.ErrorForCode(sresp.ErrorCode); err != nil {
			return Assignment{}, fmt.Errorf("sync group %s: %w", m.cfg.Group, err)
		}
		var a Assignment
		if err := json.Unmarshal(sresp.MemberAssignment, &a); err != nil {
			return Assignment{}, fmt.Errorf("assignment Sluice cannot read: %w", err)
		}
		a.Generation, a.MemberID = resp.Generation, m.memberID
		return a, nil
	}
}

// heartbeat keeps the membership alive until a rebalance starts, a rejoin is asked for, or
// ctx is done. A member whose heartbeats have not reached the coordinator for the session
// timeout minus one heartbeat interval is lost: it stops its work before the coordinator can
// give it to another member.
func (m *Membership) heartbeat(ctx context.Context, a Assignment) error {
	tick := time.NewTicker(m.cfg.HeartbeatInterval)
	defer tick.Stop()
	var delay <-chan time.Time
	if a.Delay > 0 {
		delay = time.After(a.Delay)
	}
	grace := m.cfg.SessionTimeout - m.cfg.HeartbeatInterval
	lastOK := time.Now()
	zombie := time.NewTimer(grace)
	defer zombie.Stop()
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.rejoin:
			return errors.New("rejoin requested")
		case <-delay:
			return errors.New("the scheduled rebalance delay is over")
		case <-zombie.C:
			err := fmt.Errorf("no heartbeat reached the group coordinator for %v: %w", time.Since(lastOK).Round(100*time.Millisecond), lastErr)
			m.handler.Lost(err)
			return err
		case <-tick.C:
		}
		req := kmsg.NewPtrHeartbeatRequest()
		req.Group, req.Generation, req.MemberID = m.cfg.Group, m.generation, m.memberID
		// A request never outlives the moment the member must give up.
		deadline := time.Now().Add(m.cfg.HeartbeatInterval)
		if giveUp := lastOK.Add(grace); giveUp.Before(deadline) {
			deadline = giveUp
		}
		hctx, cancel := context.WithDeadline(ctx, deadline)
		resp, err := req.RequestWith(hctx, m.client)
		cancel()
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		switch {
		case err == nil:
			lastOK = time.Now()
			zombie.Reset(grace)
		case errors.Is(err, kerr.RebalanceInProgress):
			return err
		case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.IllegalGeneration), errors.Is(err, kerr.FencedInstanceID):
			m.memberID = ""
			m.handler.Lost(err)
			return err
		default:
			lastErr = err
		}
	}
}

func (m *Membership) leave() {
	if m.memberID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = m.cfg.Group
	lm := kmsg.NewLeaveGroupRequestMember()
	lm.MemberID = m.memberID
	req.Members = append(req.Members, lm)
	req.MemberID = m.memberID
	if _, err := req.RequestWith(ctx, m.client); err != nil {
		m.log.Debug("leaving the worker group", "err", err)
	}
	m.memberID = ""
}
