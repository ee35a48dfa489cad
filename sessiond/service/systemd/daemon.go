package systemd

// Daemon is a unit for a daemon that starts at boot once the network is
// up, as both readymesh daemons do: it holds what differs between them,
// and Unit writes the sections they share around it.
type Daemon struct {
	// Name is the unit's file name, such as readymesh-broker.service.
	Name string
	// Header is Unit.Header: who wrote the unit and how to remove it.
	Header string
	// Description is the [Unit] Description.
	Description string
	// NetworkWhy says, above After=network-online.target, why the daemon
	// waits for the network. Empty writes no comment.
	NetworkWhy string
	// StartLimits follow in [Unit]: when systemd gives up restarting the
	// daemon. Nil adds none (systemd's default limits).
	StartLimits []Directive
	// Service is the [Service] section; its Name is ignored.
	Service Section
	// BootWhy says, above WantedBy=multi-user.target, why the daemon
	// starts at boot. Empty writes no comment.
	BootWhy string
}

// Unit is d's unit: [Unit] with the description, Wants= and
// After=network-online.target and the start limits; d.Service; and
// [Install] WantedBy=multi-user.target.
func (d *Daemon) Unit() *Unit {
	unit := append([]Directive{
		{Key: "Description", Value: d.Description},
		{Key: "Wants", Value: "network-online.target"},
		{Key: "After", Value: "network-online.target", Why: d.NetworkWhy},
	}, d.StartLimits...)
	service := d.Service
	service.Name = "Service"
	return &Unit{
		Name:   d.Name,
		Header: d.Header,
		Sections: []Section{
			{Name: "Unit", Directives: unit},
			service,
			{Name: "Install", Directives: []Directive{{Key: "WantedBy", Value: "multi-user.target", Why: d.BootWhy}}},
		},
	}
}
