/*
 * delivery.pml: tandem's delivery protocol, as a Promela model for spin.
 *
 * One message is accepted (the client's 202 comes after the commit). It
 * has two forward steps, a and b, where b runs after a; with -DSAGA (the
 * default; -DPLAIN drops it) each has a compensation, a.compensate and
 * b.compensate. Two workers claim due deliveries, each claim raising the
 * delivery's fencing token; they check the lease before sending, send one
 * request, and record its outcome (DeliveryComplete) or give the claim
 * back (DeliveryPostpone). The store accepts either only while the
 * delivery is running under the caller's token. A worker may crash at
 * every step; a lease then runs out (the clock process) and the delivery
 * is claimed again. An operator replays dead deliveries.
 *
 * Every change of a delivery's status carries a comment of the form
 * T: <from> -> <to> <event> (from "none" when the delivery is first
 * stored); model_test.go checks that these equal record.DeliveryTransitions.
 * The status names are the mtype dstatus below (record.DeliveryStatus)
 * and mstatus without its msg_ prefix (record.MessageStatus).
 *
 * Broken variants, each caught by one property (see check.sh):
 *   ACK_BEFORE_COMMIT  the 202 goes out before the commit          p1_stored
 *   NO_RECLAIM         a claim never takes a lease that ran out    p1_final
 *   NO_FENCING         complete and postpone check the owner only  p2
 *   NO_LEASE_CHECK     a worker sends without checking its lease   p2
 *   COMP_ON_SUCCESS    compensate although no required step failed p3_failed
 *   COMP_ALL           compensate steps that never ran             p3_only
 *   COMP_ANY_ORDER     compensations do not wait for downstream    p3_order
 *   NO_MAYBE           a step that died of timeouts never happened p3_complete
 *   MAYBE_LAST_ONLY    only the last attempt's timeout counts      p3_complete
 *   MAYBE_NO_RECLAIM   a claim that ended unrecorded is not "maybe" p3_complete
 *   REPLAY_AFTER_COMP  forward replays allowed after compensation  p4
 */

#ifndef MAXF
#define MAXF 2        /* faults: worker crashes, and leases that run out under a live worker */
#endif
#ifndef MAXATT
#define MAXATT 2      /* attempts before a transient failure is dead (retry.max_attempts) */
#endif
#ifndef MAXREPLAY
#define MAXREPLAY 1   /* replays a person makes */
#endif

#ifndef PLAIN
#define SAGA
#endif

mtype:dstatus = { waiting, scheduled, running, succeeded, dead, skipped, compensating, compensated, cancelled };
mtype:mstatus = { msg_accepted, msg_running, msg_succeeded, msg_partially_succeeded, msg_failed, msg_compensated };
mtype:result = { r_ok, r_5xx, r_4xx, r_timeout };

/* Deliveries: a, b (after a), and their compensations. */
#define A 0
#define B 1
#define NF 2
#ifdef SAGA
#define CA 2
#define CB 3
#define ND 4
#else
#define ND 2
#endif

/* The store: one row per delivery, one for the message. */
mtype:dstatus st[ND];   /* 0 (none) until the message is stored */
byte att[ND];           /* attempts since accept or the last replay */
bit maybe[ND];          /* an attempt may have reached the target with no known outcome */
mtype:mstatus mst;      /* the message status, derived from st */
bit stored;             /* the message is committed */
bit attempted;          /* some attempt was recorded (Attempts > 0) */
byte replays;

/* The fencing token. A claim raises the delivery's token; a write that
 * ends or moves a claim must carry the latest one. Only that equality
 * matters, so the model keeps, per worker, the delivery it holds (wd)
 * and whether its token is still the latest (cur): a claim of x makes
 * every other worker's token of x stale. */
byte wd[2];
bit cur[2];
/* A live worker holds the latest claim of x. */
#define held(x) (cur[0] && wd[0] == (x) || cur[1] && wd[1] == (x))

/* Time, abstracted: whether the current claim's lease has run out. */
bit expired[ND];
byte faults;

/* The target, and ghosts the properties read. */
byte inflight[ND];      /* requests of the delivery at its target now */
bit applied[NF];        /* the target applied a forward step (the charge happened) */
bit acked;              /* the client got its 202 */
bit twolive;            /* two requests of one delivery were in flight at once */
bit badfailed;          /* a compensation was sent while no required step had failed */
bit badonly;            /* a compensation was sent for a step that neither succeeded nor may have */
bit badorder;           /* a compensation was sent before a downstream one was final */
bit fwdaftercomp;       /* a forward request was sent after compensation began */
bit creplay;            /* a person replayed b's dead compensation after a's was due */

hidden byte h_open, h_comp, h_cdead;
hidden byte h_ok;

#define isfinal(s)  ((s) == succeeded || (s) == dead || (s) == skipped || (s) == compensated || (s) == cancelled)
#define failedgood(s) ((s) == dead || (s) == skipped || (s) == cancelled)
#define undone(s)   ((s) == succeeded || (s) == compensating || (s) == compensated)
#ifdef SAGA
#define began(c)    (st[c] != waiting && st[c] != cancelled)
#define compbegan   (began(CA) || began(CB))
#define alldone     (stored && isfinal(st[A]) && isfinal(st[B]) && isfinal(st[CA]) && isfinal(st[CB]))
#else
#define compbegan   false
#define alldone     (stored && isfinal(st[A]) && isfinal(st[B]))
#endif
#define terminal    (mst == msg_succeeded || mst == msg_partially_succeeded || mst == msg_failed || mst == msg_compensated)

/* A claim takes a delivery that is due, or running with a lease that ran out. */
#ifdef NO_RECLAIM
#define claimable(x) (st[x] == scheduled)
#else
#define claimable(x) (st[x] == scheduled || st[x] == running && expired[x])
#endif

/* The store's check for complete and postpone. */
#ifdef NO_FENCING
#define holds(x, w) (st[x] == running)  /* the owner, shared by every worker of a process */
#else
#define holds(x, w) (st[x] == running && cur[w])
#endif

/* The worker's check before sending: its lease has at least the target's
 * timeout.total left. A lease that was claimed again has run out. */
#ifdef NO_LEASE_CHECK
#define leaseok(x, w) true
#else
#define leaseok(x, w) (cur[w] && !expired[x])
#endif

/* A compensation is needed for a step that succeeded or may have. */
#ifdef COMP_ALL
#define needs(s) true
#else
#ifdef NO_MAYBE
#define needs(s) undone(st[s])
#else
#define needs(s) (undone(st[s]) || maybe[s])
#endif
#endif

/* record.DeriveMessageStatus */
inline derive() {
	h_open = !alldone;
	h_comp = 0;
	h_cdead = 0;
#ifdef SAGA
	h_comp = (st[CA] == succeeded || st[CB] == succeeded || st[A] == compensated || st[A] == compensating ||
		st[B] == compensated || st[B] == compensating);
	h_cdead = (st[CA] == dead || st[CB] == dead);
#endif
	h_ok = (st[A] == succeeded) + (st[B] == succeeded);
	if
	:: h_open && !attempted && (st[A] == scheduled || st[A] == waiting) && (st[B] == scheduled || st[B] == waiting) ->
		mst = msg_accepted
	:: else ->
		if
		:: h_open -> mst = msg_running
		:: !h_open && h_cdead -> mst = msg_failed
		:: !h_open && !h_cdead && h_comp -> mst = msg_compensated
		:: !h_open && !h_cdead && !h_comp && h_ok == 2 -> mst = msg_succeeded
		:: !h_open && !h_cdead && !h_comp && h_ok == 0 -> mst = msg_failed
		:: !h_open && !h_cdead && !h_comp && h_ok == 1 -> mst = msg_partially_succeeded
		fi
	fi;
	h_open = 0; h_comp = 0; h_cdead = 0; h_ok = 0
}

#ifdef SAGA
/* The compensation c of step s is due once the saga failed: scheduled if
 * s succeeded or may have and every downstream compensation is final
 * (ready), cancelled if there is nothing to undo. */
inline compdue(c, s, ready) {
	if
	:: st[c] == waiting && !needs(s) ->
		st[c] = cancelled /* T: waiting -> cancelled compensation-cancel */
	:: st[c] == waiting && needs(s) && (ready) ->
		st[c] = scheduled /* T: waiting -> scheduled compensation-schedule */
	:: else
	fi
}

/* The forward step s follows its compensation c. */
inline mirror(c, s) {
	if
	:: (st[c] == scheduled || st[c] == running) && st[s] == succeeded ->
		st[s] = compensating /* T: succeeded -> compensating compensate */
	:: st[c] == succeeded && st[s] == compensating ->
		st[s] = compensated /* T: compensating -> compensated compensation-success */
	:: st[c] == dead && st[s] == compensating ->
		st[s] = succeeded /* T: compensating -> succeeded compensation-dead */
	:: else
	fi
}
#endif

/* record.Resolve: what changes in the message now that a delivery changed. */
inline resolve() {
	if
	:: st[B] == waiting && st[A] == succeeded ->
		st[B] = scheduled /* T: waiting -> scheduled resolve-schedule */
	:: st[B] == waiting && (failedgood(st[A]) || st[A] == compensating || st[A] == compensated) ->
		st[B] = skipped /* T: waiting -> skipped resolve-skip */
	:: else
	fi;
#ifdef SAGA
	/* Settled: every forward step is final (or being compensated). */
	if
	:: (isfinal(st[A]) || st[A] == compensating) && (isfinal(st[B]) || st[B] == compensating) ->
		if
#ifndef COMP_ON_SUCCESS
		:: !failedgood(st[A]) && !failedgood(st[B]) && st[A] != compensating && st[A] != compensated &&
		   st[B] != compensating && st[B] != compensated ->
			/* no required step failed: nothing to undo */
			if
			:: st[CA] == waiting -> st[CA] = cancelled /* T: waiting -> cancelled compensation-cancel */
			:: else
			fi;
			if
			:: st[CB] == waiting -> st[CB] = cancelled /* T: waiting -> cancelled compensation-cancel */
			:: else
			fi
#endif
		:: else ->
			/* reverse dependency order: b's compensation first */
			compdue(CB, B, true);
#ifdef COMP_ANY_ORDER
			compdue(CA, A, true)
#else
			compdue(CA, A, isfinal(st[CB]))
#endif
		fi
	:: else
	fi;
	mirror(CA, A);
	mirror(CB, B);
#endif
	derive()
}

proctype client() {
#ifdef ACK_BEFORE_COMMIT
	acked = 1;
	if
	:: true -> skip /* crashed before the commit */
	:: true ->
#endif
	d_step {
		st[A] = scheduled /* T: none -> scheduled accept */;
		st[B] = waiting /* T: none -> waiting accept */;
#ifdef SAGA
		st[CA] = waiting /* T: none -> waiting accept */;
		st[CB] = waiting /* T: none -> waiting accept */;
#endif
		stored = 1;
		derive()
	}
#ifdef ACK_BEFORE_COMMIT
	fi
#else
	;
	acked = 1 /* the 202, after the commit */
#endif
}

/* A worker crashes: its claim stays running until its lease runs out. */
inline crash() {
	d_step {
		faults < MAXF ->
		faults++;
		d = 0; cur[w] = 0; wd[w] = 0; res = 0
	};
	goto end
}

/* DeliveryClaim of x: leased under a new token. */
inline claim(x) {
	d_step {
		claimable(x) ->
		d = x;
		if
		:: st[x] == scheduled ->
			st[x] = running /* T: scheduled -> running claim */
		:: else ->
			/* running, its lease ran out: the last claim may have sent */
#ifndef MAYBE_NO_RECLAIM
			if
			:: x < NF -> maybe[x] = 1
			:: else
			fi;
#endif
			st[x] = running /* T: running -> running lease-expiry-reclaim */
		fi;
		/* a new token: every earlier claim's token is now stale */
		cur[w] = 1;
		if
		:: wd[1 - w] == x -> cur[1 - w] = 0
		:: else
		fi;
		wd[w] = x;
		expired[x] = 0;
		derive()
	}
}

/* The request ends with result r: the target answered, or the client
 * timed out. ap: the target applied it. */
inline answer(r, ap) {
	d_step {
		inflight[d]--;
		res = r;
		if
		:: d < NF && ap -> applied[d] = 1
		:: else
		fi
	}
}

proctype worker(byte w) {
	byte d;
	mtype:result res;
end:
	if
	:: claim(A)
	:: claim(B)
#ifdef SAGA
	:: claim(CA)
	:: claim(CB)
#endif
	fi;
	/* the reads before the request (message, step results), then the
	 * lease check and the request, or the claim given back */
	if
	:: crash()
	:: d_step {
		leaseok(d, w) ->
		/* the request is written: it is in flight at the target until it ends */
		inflight[d]++;
		if
		:: inflight[d] > 1 -> twolive = 1
		:: else
		fi;
		if
		:: d < NF && compbegan -> fwdaftercomp = 1
		:: else
		fi;
#ifdef SAGA
		if
		:: d >= NF ->
			if
			:: !failedgood(st[A]) && !failedgood(st[B]) -> badfailed = 1
			:: else
			fi;
			if
			:: !undone(st[d - NF]) && !maybe[d - NF] -> badonly = 1
			:: else
			fi;
			if
			:: d == CA && !isfinal(st[CB]) && !creplay -> badorder = 1
			:: else
			fi
		:: else
		fi
#endif
	   }
	:: d_step {
		!leaseok(d, w) ->
		/* DeliveryPostpone: give the claim back, uncounted */
		if
		:: holds(d, w) ->
			st[d] = scheduled /* T: running -> scheduled postpone */;
			expired[d] = 0;
			derive()
		:: else /* ErrLeaseLost */
		fi;
		d = 0; cur[w] = 0; wd[w] = 0
	   };
	   goto end
	fi;
	if
	:: answer(r_ok, 1)
	:: answer(r_5xx, 0)
	:: answer(r_4xx, 0)
	:: answer(r_timeout, 1)  /* it may have been applied */
	:: answer(r_timeout, 0)  /* or not */
	fi;
	/* DeliveryComplete: record the attempt under the claim's token */
	if
	:: crash()
	:: d_step {
		if
		:: holds(d, w) ->
			attempted = 1;
			expired[d] = 0;
			if
			:: res == r_ok ->
				st[d] = succeeded /* T: running -> succeeded complete-success */
			:: res == r_4xx ->
				st[d] = dead /* T: running -> dead complete-dead */
			:: else ->
				if
				:: d < NF && res == r_timeout -> maybe[d] = 1
#ifdef MAYBE_LAST_ONLY
				:: d < NF && res != r_timeout -> maybe[d] = 0
#endif
				:: else
				fi;
				att[d]++;
				if
				:: att[d] < MAXATT ->
					st[d] = scheduled /* T: running -> scheduled complete-retry */
				:: else ->
					st[d] = dead /* T: running -> dead complete-dead */
				fi
			fi;
			resolve()
		:: else /* ErrLeaseLost: the result is dropped */
		fi;
		d = 0; cur[w] = 0; wd[w] = 0; res = 0
	   }
	fi;
	goto end
}

/* Time passes: a running claim's lease runs out. A request in flight ends
 * within timeout.total, and a request starts only with that much lease
 * left, so no lease runs out under a request in flight. Running out
 * under a live worker (one slow before its request or its record) is a
 * fault; under a crashed one it is what happens. */
inline expire(x) {
	st[x] == running && !expired[x] && inflight[x] == 0 && (!held(x) || faults < MAXF) ->
	if
	:: held(x) -> faults++
	:: else
	fi;
	expired[x] = 1
}

proctype clock() {
end:
	do
	::  d_step { expire(A) }
	::  d_step { expire(B) }
#ifdef SAGA
	::  d_step { expire(CA) }
	::  d_step { expire(CB) }
#endif
	od
}

/* A person replays a dead delivery: DeliveryReplay. Forward steps are
 * refused once the message's compensation began. */
#ifdef REPLAY_AFTER_COMP
#define replayok(x) (st[x] == dead)
#else
#define replayok(x) (st[x] == dead && (x >= NF || !compbegan))
#endif

inline replay(x) {
	replays < MAXREPLAY && replayok(x) ->
	replays++;
	st[x] = scheduled /* T: dead -> scheduled replay */;
	att[x] = 0;
#ifdef SAGA
	if
	:: x == CB && st[CA] != waiting -> creplay = 1
	:: else
	fi;
#endif
	/* record.Unskip */
	if
	:: x == A && st[B] == skipped -> st[B] = waiting /* T: skipped -> waiting unskip */
	:: else
	fi;
#ifdef SAGA
	if
	:: x < NF && st[CA] == cancelled -> st[CA] = waiting /* T: cancelled -> waiting reopen */
	:: else
	fi;
	if
	:: x < NF && st[CB] == cancelled -> st[CB] = waiting /* T: cancelled -> waiting reopen */
	:: else
	fi;
#endif
	resolve()
}

proctype operator() {
end:
	do
	:: d_step { replay(A) }
	:: d_step { replay(B) }
#ifdef SAGA
	:: d_step { replay(CA) }
	:: d_step { replay(CB) }
#endif
	od
}

init {
	atomic {
		run client();
		run worker(0);
		run worker(1);
		run clock();
		run operator()
	}
}

/* P1: no acknowledged message is lost: it is stored, and every delivery
 * of it reaches a final state (and the message a terminal status). */
ltl p1_stored { [] (acked -> stored) }
ltl p1_final { [] (acked -> <> (alldone && terminal)) }
/* P2: never two live attempts of one delivery. */
ltl p2 { [] !twolive }
/* P3: compensation only after a required step failed for good, only for
 * steps that succeeded or may have, in reverse order; and every step
 * that was applied is compensated once the saga settled failed. */
ltl p3_failed { [] !badfailed }
ltl p3_only { [] !badonly }
ltl p3_order { [] !badorder }
#ifdef SAGA
ltl p3_complete { [] (alldone && (failedgood(st[A]) || failedgood(st[B])) ->
	((!applied[A] || st[CA] == succeeded || st[CA] == dead) && (!applied[B] || st[CB] == succeeded || st[CB] == dead))) }
#endif
/* P4: no forward step runs after compensation began. */
ltl p4 { [] !fwdaftercomp }
