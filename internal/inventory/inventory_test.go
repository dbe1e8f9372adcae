package inventory_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/provgate/provgate/internal/cache"
	"github.com/provgate/provgate/internal/inventory"
	"github.com/provgate/provgate/internal/keyring"
	"github.com/provgate/provgate/internal/origin"
	"github.com/provgate/provgate/internal/originapi"
	"github.com/provgate/provgate/internal/refcloud/refcloudtest"
)

func TestSyncKeepsAnEncryptedCopyForOfflineStarts(t *testing.T) {
	cloud := refcloudtest.Start(t, refcloudtest.Options{})
	cert, key := cloud.CertFiles(refcloudtest.Site)
	client, err := origin.New(origin.Config{URL: cloud.URL, CAFile: cloud.CAFile(), CertFile: cert, KeyFile: key, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	dir := t.TempDir()
	k, _ := keyring.WriteKeyFile(filepath.Join(dir, "k"))
	store, err := cache.Open(filepath.Join(dir, "c.db"), k, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()

	s := inventory.NewSyncer(client, store, nil)
	if _, known := s.Age(time.Now()); known || len(s.Current().Devices) != 0 {
		t.Fatal("a new syncer knows devices")
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ix := s.Current()
	if ix.Site != refcloudtest.Site || len(ix.Devices) != 6 || ix.Devices["001565123456"].Brand != "yealink" {
		t.Fatalf("index: %+v", ix)
	}
	if err := s.Sync(ctx); err != nil { // unchanged: 304
		t.Fatal(err)
	}
	if s.Current() != ix {
		t.Fatal("an unchanged inventory replaced the index")
	}
	if got := cloud.Server.Stats().Inventory; got != 2 {
		t.Fatalf("cloud served the inventory %d times", got)
	}

	cloud.Stop()
	offline := inventory.NewSyncer(client, store, nil)
	if err := offline.Sync(ctx); err == nil {
		t.Fatal("sync with the cloud down succeeded")
	}
	if err := offline.LoadCached(ctx); err != nil {
		t.Fatal(err)
	}
	if len(offline.Current().Devices) != 6 {
		t.Fatal("cached inventory lost devices")
	}
	if age, known := offline.Age(time.Now()); !known || age < 0 || age > time.Hour {
		t.Fatalf("age %v known %v", age, known)
	}
}

func TestTenantByAddrIsMostSpecific(t *testing.T) {
	ix, err := inventory.NewIndex(&originapi.Inventory{Tenants: []originapi.Tenant{
		{ID: "wide", AllowCIDRs: []string{"10.0.0.0/8"}},
		{ID: "narrow", AllowCIDRs: []string{"10.20.0.0/16", "fd00:20::/64"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]string{"10.20.1.1": "narrow", "10.30.1.1": "wide", "fd00:20::5": "narrow", "192.168.1.1": "", "::ffff:10.20.1.1": "narrow"} {
		got := ""
		if tt := ix.TenantByAddr(netip.MustParseAddr(ip)); tt != nil {
			got = tt.ID
		}
		if got != want {
			t.Errorf("%s: %q, want %q", ip, got, want)
		}
	}
	if _, err := inventory.NewIndex(&originapi.Inventory{Devices: []originapi.Device{{MAC: "001565123456", Tenant: "nobody"}}}); err == nil {
		t.Fatal("device of an unknown tenant accepted")
	}
}
