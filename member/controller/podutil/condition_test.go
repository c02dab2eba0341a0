package podutil

import (
	"testing"
	"time"

	meridianv1 "github.com/meridian-fed/meridian/proto/meridian/v1"
)

// TestSetConditionKeepsOrder: setting a condition keeps every condition
// where it was, so a status computed twice from the same state is equal
// (a controller that moved the one it set to the end wrote its status on
// every sync, the conditions swapping places each time).
func TestSetConditionKeepsOrder(t *testing.T) {
	now := time.Now()
	conds := []*meridianv1.Condition{{Type: "Available", Status: "True"}, {Type: "Progressing", Status: "True"}}
	for range 3 {
		conds = SetCondition(conds, &meridianv1.Condition{Type: "Available", Status: "True"}, now)
		conds = SetCondition(conds, &meridianv1.Condition{Type: "Progressing", Status: "True", Reason: "NewReplicaSetAvailable"}, now)
		if len(conds) != 2 || conds[0].GetType() != "Available" || conds[1].GetType() != "Progressing" {
			t.Fatalf("conditions %v, want Available then Progressing", conds)
		}
	}
	conds = SetCondition(conds, &meridianv1.Condition{Type: "ReplicaFailure", Status: "True"}, now)
	if len(conds) != 3 || conds[2].GetType() != "ReplicaFailure" {
		t.Fatalf("a new condition goes last: %v", conds)
	}
	orig := []*meridianv1.Condition{{Type: "A", Status: "True"}}
	out := ReplaceCondition(orig, &meridianv1.Condition{Type: "B"})
	out[0].Status = "False"
	if orig[0].GetStatus() != "True" {
		t.Fatal("ReplaceCondition changed its input (a shared cache)")
	}
}
