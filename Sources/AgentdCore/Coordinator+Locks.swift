import AgentdBase
/// What a client asks for in AcquireResourceLock.
package struct LockRequest {
    /// Hashed once here, as the request arrives; every table the lock enters reuses the hash.
    package let lockKey: LockKey
    package var key: String { lockKey.text }
    package var owner: String = "anonymous"
    package var provider: String?
    package var ttlSecs: Int64?
    package var taskId: UUID128?
    package var nodeId: UUID128?
    package var metadata: [UInt8] = JSONPayload.emptyObject
    /// The connection whose close releases the lock (release_on_disconnect), or 0.
    package var boundConnection: UInt64 = 0

    package init(key: String, owner: String = "anonymous", provider: String? = nil, ttlSecs: Int64? = nil,
                 taskId: UUID128? = nil, nodeId: UUID128? = nil, metadata: [UInt8] = JSONPayload.emptyObject,
                 boundConnection: UInt64 = 0) {
        self.lockKey = LockKey(key)
        self.owner = owner
        self.provider = provider
        self.ttlSecs = ttlSecs
        self.taskId = taskId
        self.nodeId = nodeId
        self.metadata = metadata
        self.boundConnection = boundConnection
    }
}

extension Coordinator {
    /// How an AcquireResourceLock ended.
    package enum LockAcquisition: Equatable {
        case granted(slot: Int32)
        case held
        case parked(waiter: UInt64)
    }

    /// A lock's TTL when the caller names none: the node timeout, at least one second.
    package var defaultLockTTLSecs: Int64 { max(settings.nodeTimeoutSecs, 1) }

    /// AcquireResourceLock: the lock, or `held` while someone (anyone, the same owner too) has it;
    /// with `waitMs` a held key parks the request in the key's FIFO queue instead.
    package func acquireLock(_ request: LockRequest, connection: UInt64 = 0, waitMs: Int64 = 0) throws -> LockAcquisition {
        expireDue()
        if let taskId = request.taskId { _ = try task(taskId) }
        guard !locks.contains(key: request.lockKey) else {
            guard waitMs > 0 else { return .held }
            return .parked(waiter: park(.lock(request), connection: connection, waitMs: waitMs))
        }
        return .granted(slot: grantLock(request))
    }

    /// The original's form: the lock's slot, or nil while it is held.
    package func acquireLock(_ request: LockRequest) throws -> Int32? {
        if case let .granted(slot) = try acquireLock(request, connection: 0, waitMs: 0) { return slot }
        return nil
    }

    /// Creates the lock for a request whose key is free, with the next fencing token.
    package func grantLock(_ request: LockRequest) -> Int32 {
        let now = nowMs
        let expiresAt = leaseDeadline(afterSecs: max(request.ttlSecs ?? defaultLockTTLSecs, 1), from: now)
        touchLock(request.lockKey, held: false)
        fencingCounter += 1
        if fencingCounter > fencingReserved {
            // Written in the same transaction as this grant, so no token outruns the disk.
            fencingReserved = fencingCounter + Coordinator.fencingReservationBlock - 1
            changes.fencingReservationMoved = true
        }
        let slot = insertLock(ResourceLock(
            lockKey: request.lockKey, leaseId: ids.next(), owner: request.owner, provider: request.provider,
            taskId: request.taskId, nodeId: request.nodeId, metadata: request.metadata,
            acquiredAtSecs: now / 1000, expiresAtMs: expiresAt, updatedAtSecs: now / 1000,
            deadline: .none, boundConnection: request.boundConnection, fencingToken: fencingCounter))
        let deadline = deadlines.schedule(expiresAt, for: .lock(slot: slot))
        updateLock(slot: slot) { $0.deadline = deadline }
        counters.acquiredResourceLocks += 1
        return slot
    }

    /// HeartbeatResourceLock: the lock runs for another `ttl` from now.
    package func heartbeatLock(key text: String, lease leaseId: UUID128, ttlSecs: Int64?) throws {
        expireDue()
        let key = LockKey(text)
        guard let slot = locks.slot(forKey: key), let lock = locks[slot: slot], lock.leaseId == leaseId else {
            throw CoordinatorError.lockNeedsActiveLease(text)
        }
        let now = nowMs
        let expiresAt = leaseDeadline(afterSecs: max(ttlSecs ?? defaultLockTTLSecs, 1), from: now)
        touchLock(key, held: true)
        deadlines.move(lock.deadline, to: expiresAt)
        updateLock(slot: slot) {
            $0.expiresAtMs = expiresAt
            $0.updatedAtSecs = now / 1000
        }
    }

    /// ReleaseResourceLock: only the current lease may release; the next waiter gets the key.
    package func releaseLock(key text: String, lease leaseId: UUID128) throws {
        expireDue()
        let key = LockKey(text)
        guard let slot = locks.slot(forKey: key), let lock = locks[slot: slot], lock.leaseId == leaseId else {
            throw CoordinatorError.lockNeedsLease(text)
        }
        touchLock(key, held: true)
        removeLock(slot: slot)
        counters.releasedResourceLocks += 1
    }
}
