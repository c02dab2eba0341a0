// Package ipam allocates pod addresses from a member's range in 127.0.0.0/8.
//
// Every address in 127.0.0.0/8 is loopback on Linux, usable without any
// configuration, so each pod gets its own address and pods can bind the same
// port side by side. A member owns one range (a CIDR such as 127.1.0.0/16);
// the allocator never hands out the range's network address, its broadcast
// address, or its first host address (".1"), which is reserved for the
// member's own services.
package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// Errors callers can test for with errors.Is.
var (
	// ErrExhausted means every address of the range is allocated.
	ErrExhausted = errors.New("address range exhausted")
	// ErrOutOfRange means an address is not an allocatable address of the range.
	ErrOutOfRange = errors.New("address not allocatable in range")
	// ErrInUse means an address is already allocated to another UID.
	ErrInUse = errors.New("address already allocated")
)

// loopback is the only network the allocator serves.
var loopback = netip.MustParsePrefix("127.0.0.0/8")

// Allocator hands out the addresses of one range, one per pod UID. It is safe
// for concurrent use.
type Allocator struct {
	prefix netip.Prefix
	// first and last bound the allocatable addresses (inclusive), as uint32.
	first, last uint32

	mu sync.Mutex
	// byUID maps a pod UID to its address; guarded by mu.
	byUID map[string]uint32
	// byAddr maps an allocated address to its UID; guarded by mu.
	byAddr map[uint32]string
	// next is where the search for a free address starts (next-fit, so that
	// a released address is not handed out again at once); guarded by mu.
	next uint32
}

// New returns an allocator for cidr, which must lie within 127.0.0.0/8 and
// leave at least one allocatable address (a prefix of /30 or shorter).
func New(cidr string) (*Allocator, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("failed to parse pod range %q: %w", cidr, err)
	}
	p = p.Masked()
	if !p.Addr().Is4() || !loopback.Contains(p.Addr()) || p.Bits() < loopback.Bits() {
		return nil, fmt.Errorf("pod range %s is not within %s", p, loopback)
	}
	if p.Bits() > 30 {
		return nil, fmt.Errorf("pod range %s is too small: use /30 or shorter", p)
	}
	network := toUint(p.Addr())
	size := uint32(1) << (32 - p.Bits())
	a := &Allocator{
		prefix: p,
		first:  network + 2, // skip the network address and .1
		last:   network + size - 2,
		byUID:  make(map[string]uint32),
		byAddr: make(map[uint32]string),
	}
	a.next = a.first
	return a, nil
}

// Prefix returns the allocator's range.
func (a *Allocator) Prefix() netip.Prefix { return a.prefix }

// ServiceAddr returns the range's reserved first host address (".1"), where
// the member's own services listen.
func (a *Allocator) ServiceAddr() netip.Addr { return fromUint(a.first - 1) }

// Size returns how many addresses the allocator can hand out.
func (a *Allocator) Size() int { return int(a.last - a.first + 1) }

// Allocate returns the address of uid, allocating one if uid has none yet.
// It fails with ErrExhausted when the range is full.
func (a *Allocator) Allocate(uid string) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ip, ok := a.byUID[uid]; ok {
		return fromUint(ip), nil
	}
	n := a.last - a.first + 1
	ip := a.next
	for i := uint32(0); i < n; i++ {
		if _, used := a.byAddr[ip]; !used {
			a.byUID[uid] = ip
			a.byAddr[ip] = uid
			a.next = ip + 1
			if a.next > a.last {
				a.next = a.first
			}
			return fromUint(ip), nil
		}
		ip++
		if ip > a.last {
			ip = a.first
		}
	}
	return netip.Addr{}, fmt.Errorf("failed to allocate an address for %s in %s: %w", uid, a.prefix, ErrExhausted)
}

// Release frees uid's address. Releasing a UID without one is not an error.
func (a *Allocator) Release(uid string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ip, ok := a.byUID[uid]; ok {
		delete(a.byUID, uid)
		delete(a.byAddr, ip)
	}
}

// Restore records that uid holds ip, as found on a pod adopted after an agent
// restart. It fails with ErrOutOfRange if ip is not allocatable here and with
// ErrInUse if another UID holds it; restoring the address uid already holds is
// not an error. If uid held a different address, that one is released.
func (a *Allocator) Restore(uid string, ip netip.Addr) error {
	ip = ip.Unmap()
	if !ip.Is4() || !a.prefix.Contains(ip) {
		return fmt.Errorf("failed to restore %s for %s: %w: %s", ip, uid, ErrOutOfRange, a.prefix)
	}
	v := toUint(ip)
	if v < a.first || v > a.last {
		return fmt.Errorf("failed to restore %s for %s: %w: reserved address", ip, uid, ErrOutOfRange)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if owner, ok := a.byAddr[v]; ok {
		if owner == uid {
			return nil
		}
		return fmt.Errorf("failed to restore %s for %s: %w by %s", ip, uid, ErrInUse, owner)
	}
	if old, ok := a.byUID[uid]; ok {
		delete(a.byAddr, old)
	}
	a.byUID[uid] = v
	a.byAddr[v] = uid
	return nil
}

// Lookup returns uid's address, if it has one.
func (a *Allocator) Lookup(uid string) (netip.Addr, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ip, ok := a.byUID[uid]
	if !ok {
		return netip.Addr{}, false
	}
	return fromUint(ip), true
}

// Len returns how many addresses are allocated.
func (a *Allocator) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.byUID)
}

func toUint(ip netip.Addr) uint32 {
	b := ip.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func fromUint(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
