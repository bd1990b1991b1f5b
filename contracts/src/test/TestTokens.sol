// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice A plain ERC20 for tests. An allowance of type(uint256).max is never spent down.
contract TestToken {
    string public name;
    string public symbol;
    uint8 public immutable decimals;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor(string memory name_, string memory symbol_, uint8 decimals_) {
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
    }

    function mint(address to, uint256 amount) external {
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external virtual returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external virtual returns (bool) {
        _spend(from, amount);
        _move(from, to, amount);
        return true;
    }

    function _spend(address from, uint256 amount) internal {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) allowance[from][msg.sender] = allowed - amount;
    }

    function _move(address from, address to, uint256 amount) internal virtual {
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }
}

/// @notice Burns 1% of every transfer: the escrow must refuse it.
contract FeeOnTransferToken is TestToken("Fee", "FEE", 8) {
    function _move(address from, address to, uint256 amount) internal override {
        uint256 burn = amount / 100;
        balanceOf[from] -= amount;
        balanceOf[to] += amount - burn;
        totalSupply -= burn;
        emit Transfer(from, to, amount - burn);
    }
}

/// @notice Returns false instead of reverting when it does not move tokens.
contract FalseToken is TestToken("False", "FALSE", 8) {
    bool public refuse;

    function setRefuse(bool r) external {
        refuse = r;
    }

    function transfer(address to, uint256 amount) external override returns (bool) {
        if (refuse) return false;
        _move(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external override returns (bool) {
        if (refuse) return false;
        _spend(from, amount);
        _move(from, to, amount);
        return true;
    }
}

/// @notice Calls back into a target with prepared calldata from inside every transfer.
contract ReentrantToken is TestToken("Reenter", "RE", 8) {
    address public target;
    bytes public payload;
    bool public lastCallSucceeded;
    bool private entered;

    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
    }

    function _move(address from, address to, uint256 amount) internal override {
        super._move(from, to, amount);
        if (target != address(0) && !entered) {
            entered = true;
            (lastCallSucceeded,) = target.call(payload);
            entered = false;
        }
    }
}
