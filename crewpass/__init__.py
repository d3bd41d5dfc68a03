"""CrewPass: the reference integration of Hookline's change feed, and the demo's data.

A fleet-crewing domain, written the way any application that uses Hookline would
write it. Partners (fleet owners, each a Hookline tenant) hold scopes and own vessels;
crew members serve on vessels, consent (or not) to share their status with each
partner, and hold documents whose verification a provider runs. When their data
changes, the five CrewPass catalogue events are captured in the same transaction
through :class:`app.changefeed.ChangeFeed`, its public API, and nothing else:
Hookline's engine never imports this package.

- :mod:`crewpass.vocabulary`: the status vocabularies and the scope of each event.
- :mod:`crewpass.models`: the domain tables (their own metadata, not Hookline's).
- :mod:`crewpass.gating`: who may hear about a crew member: fleet, scope, consent.
- :mod:`crewpass.payloads`: the allow-listed data of each event.
- :mod:`crewpass.audience`: the recipients query that applies the gate, and the withheld log.
- :mod:`crewpass.feed`: the five watches.
- :mod:`crewpass.simulator`: a fleet that changes at a steady pace, for the demo.
- :mod:`crewpass.demo`: ``hookline demo``.
"""
