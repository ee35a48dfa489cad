package wire

// Refusable is a reply that can carry a refusal. Every reply a broker
// protocol writes has an Error field; a stream handler that refuses a
// request writes the protocol's own reply type with only Error set, so the
// caller decodes the refusal as it decodes an answer.
type Refusable interface {
	SetError(*Error)
}

var (
	_ Refusable = (*EnrollReply)(nil)
	_ Refusable = (*CheckInAck)(nil)
	_ Refusable = (*HelloReply)(nil)
	_ Refusable = (*LoginReply)(nil)
	_ Refusable = (*Reply)(nil)
	_ Refusable = (*RelayReady)(nil)
	_ Refusable = (*BlobReply)(nil)
)

// SetError implements Refusable.
func (r *EnrollReply) SetError(e *Error) { r.Error = e }

// SetError implements Refusable.
func (r *CheckInAck) SetError(e *Error) { r.Error = e }

// SetError implements Refusable.
func (r *HelloReply) SetError(e *Error) { r.Error = e }

// SetError implements Refusable.
func (r *LoginReply) SetError(e *Error) { r.Error = e }

// SetError implements Refusable.
func (r *Reply) SetError(e *Error) { r.Error = e }

// SetError implements Refusable.
func (r *RelayReady) SetError(e *Error) { r.Error = e }

// SetError implements Refusable.
func (r *BlobReply) SetError(e *Error) { r.Error = e }
