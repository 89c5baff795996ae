/* One-line forwards to DPDK's inline API; see shim.h. */
#include "shim.h"

int jr_errno(void) { return rte_errno; }

unsigned jr_lcore_id(void) { return rte_lcore_id(); }

int jr_link_get_nowait(uint16_t port_id, struct jr_link *out)
{
	struct rte_eth_link link;
	int ret = rte_eth_link_get_nowait(port_id, &link);
	if (ret != 0)
		return ret;
	out->speed_mbps = link.link_speed;
	out->up = link.link_status == RTE_ETH_LINK_UP;
	out->full_duplex = link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
	out->autoneg = link.link_autoneg == RTE_ETH_LINK_AUTONEG;
	return 0;
}

uint16_t jr_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			 struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t jr_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			 struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

uint16_t jr_eth_tx_prepare(uint16_t port_id, uint16_t queue_id,
			   struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_prepare(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *jr_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int jr_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
			  unsigned count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void jr_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

uint8_t *jr_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, uint8_t *);
}

uint16_t jr_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

uint32_t jr_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

uint16_t jr_pktmbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }

uint16_t jr_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t jr_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

uint8_t *jr_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return (uint8_t *)rte_pktmbuf_append(m, len);
}

uint8_t *jr_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return (uint8_t *)rte_pktmbuf_prepend(m, len);
}

uint8_t *jr_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return (uint8_t *)rte_pktmbuf_adj(m, len);
}

int jr_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

void jr_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }

uint64_t jr_mbuf_ol_flags(const struct rte_mbuf *m) { return m->ol_flags; }

void jr_mbuf_set_ol_flags(struct rte_mbuf *m, uint64_t flags)
{
	m->ol_flags = flags;
}

void jr_mbuf_set_tx_lens(struct rte_mbuf *m, uint16_t l2_len, uint16_t l3_len)
{
	m->l2_len = l2_len;
	m->l3_len = l3_len;
}
